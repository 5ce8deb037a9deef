"""Every papermill notebook stops on a parameter it does not define, naming it and the closest one it does,
before it has done or written anything (papermill itself only logs "Passed unknown parameter")."""
import json
from pathlib import Path
import pytest

NBS = Path(__file__).resolve().parent.parent/'nbs'

TYPOS = {   # notebook: (misspelt parameter, the parameter meant)
    'run_experiment': ('out_dir', 'output_dir'),
    'compare_runs':   ('outputs_dir', 'output_dir'),
    'paradigm_study': ('seed', 'seeds'),
    'freezing_study': ('freeze_layer', 'freeze_layers'),
    'two_step_study': ('epoch', 'epochs'),
    'task_study':     ('seed', 'seeds'),
    'embeddings':     ('out_dir', 'output_dir'),
    'reproduce':      ('run_dir', 'run'),
}

def papermill_notebooks()->set:
    "The notebooks of nbs/ that have a cell tagged `parameters`."
    return {p.stem for p in NBS.glob('*.ipynb')
            if any('parameters' in c.get('metadata', {}).get('tags', []) for c in json.loads(p.read_text())['cells'])}

def test_every_papermill_notebook_is_tested():
    assert papermill_notebooks() == set(TYPOS), f'papermill notebooks {sorted(papermill_notebooks())}, tested {sorted(TYPOS)}'

@pytest.mark.parametrize('name', list(TYPOS))
def test_unknown_parameter_stops_the_notebook_naming_it(name, tmp_path, papermill):
    typo, meant = TYPOS[name]
    work, target = tmp_path/'work', tmp_path/'target'
    work.mkdir()
    r = papermill(name, tmp_path/'out.ipynb', work, **{typo: str(target)})
    assert r.error is not None and r.error.startswith('UnknownParameterError'), r.error
    assert f"{typo}='{target}' (did you mean {meant}?)" in r.error, r.error
    first = r.error_cell().split('\n')[0]   # the first line checks: `check_params(globals())`, its result kept or not
    assert first.startswith('from aura.params import check_params; ') and first.endswith('check_params(globals())'), r.error_cell()[:200]
    assert sorted(p.name for p in work.rglob('*')) == [] and not target.exists(), 'the notebook wrote something'
    assert r.seconds < 30, f'{r.seconds:.1f} s'
