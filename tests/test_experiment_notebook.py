"""The user's main path: the experiment notebook run through papermill, on the bundled samples and the offline encoder.

The tiny run happens once (module fixture) and several tests read it. It runs with `MPLBACKEND=Agg`, as on a server
or in CI, where a kernel keeps Agg and a figure displayed as a `Figure` would be lost, and with an empty tokenization
cache, so that writing the cache (datasets' "Saving the dataset" bars) is part of the run."""
import json
from pathlib import Path
import pytest

def text_of(o:dict)->str:
    "Everything an output shows as text: a stream, the text/plain of a result, or an error."
    if o['output_type'] == 'stream': t = o['text']
    elif o['output_type'] == 'error': t = [o['ename'], ': ', o['evalue'], *o.get('traceback', [])]
    else: t = o.get('data', {}).get('text/plain', '')
    return ''.join(t) if isinstance(t, list) else t

@pytest.fixture(scope='module')
def tiny(tmp_path_factory, papermill):
    tmp = tmp_path_factory.mktemp('tiny')
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('MPLBACKEND', 'Agg'); mp.setenv('AURA_CACHE', str(tmp/'cache'))
        r = papermill('run_experiment', tmp/'out.ipynb', tmp, paradigm='paired', preset='tiny', output_dir=str(tmp/'outputs'))
    assert r.error is None, r.error
    (run,) = list((tmp/'outputs').iterdir())
    return r, run

def test_papermill_tiny_run_writes_a_complete_report(tiny):
    _, run = tiny
    for f in ('config.json', 'env.json', 'history.csv', 'epochs.csv', 'metrics.json', 'predictions/L1_olid.csv', 'best_model/model.safetensors'):
        assert (run/f).is_file(), f
    m = json.loads((run/'metrics.json').read_text())
    assert (m['schema'], m['paradigm'], m['tasks_name']) == (2, 'paired', 'tox_emo'), (m.get('schema'), m['paradigm'], m.get('tasks_name'))
    assert list(m['sets']) == ['L1_olid', 'emotion', 'L2_jigsaw', 'L3_toxigen'], list(m['sets'])   # every set of the trained tasks, in table order
    assert {k: r['task'] for k, r in m['sets'].items()} == {'L1_olid': 'tox', 'emotion': 'emo', 'L2_jigsaw': 'tox', 'L3_toxigen': 'tox'}
    for k, r in m['sets'].items():
        t = r['fixed']
        assert t['ci_lo'] <= t['macro_f1'] <= t['ci_hi'] and 0 < t['floor'] < 0.5 + 1e-9, (k, t)
        assert ('tuned' in r) == (r['task'] == 'tox'), (k, list(r))   # a tuned threshold for the binary task only
    for k in ('delta_f1', 'calibration', 'thresholds', 'best_epoch', 'wall_seconds', 'skipped', 'overlap'): assert k in m, k
    c = json.loads((run/'config.json').read_text())
    assert (c['eval_sets'], c['task_table']['name']) == ([], 'tox_emo'), (c['eval_sets'], c['task_table'].get('name'))

def test_papermill_eval_sets_choose_what_is_evaluated(tmp_path, papermill):
    r = papermill('run_experiment', tmp_path/'out.ipynb', tmp_path, paradigm='masked', preset='tiny',
                  n_boot=100, eval_sets='L1_olid,L3_toxigen', output_dir=str(tmp_path/'outputs'))
    assert r.error is None, r.error
    (run,) = list((tmp_path/'outputs').iterdir())
    m = json.loads((run/'metrics.json').read_text())
    assert list(m['sets']) == ['L1_olid', 'L3_toxigen'] and 'delta_f1' in m, list(m['sets'])
    assert sorted(p.name for p in (run/'predictions').iterdir()) == ['L1_olid.csv', 'L3_toxigen.csv']
    assert json.loads((run/'config.json').read_text())['eval_sets'] == ['L1_olid', 'L3_toxigen']

def test_every_figure_is_a_png_in_the_report_under_agg(tiny):
    r, run = tiny
    pngs = sorted(p.name for p in (run/'figures').glob('*.png'))
    shown = [o for c in r.nb['cells'] for o in c.get('outputs', []) if 'image/png' in o.get('data', {})]
    lost = [text_of(o) for c in r.nb['cells'] for o in c.get('outputs', []) if text_of(o).startswith('<Figure size')]
    assert len(pngs) >= 8, pngs
    assert (len(shown), lost) == (len(pngs), []), f'{len(shown)} images shown for {len(pngs)} PNGs written; shown as text: {lost}'

@pytest.mark.parametrize('noise', ['Saving the dataset', 'IProgress not found'])   # datasets' cache bars, tqdm without ipywidgets
def test_report_has_no_progress_noise(tiny, noise):
    r, _ = tiny
    hits = [(i, l) for i, c in enumerate(r.nb['cells']) for o in c.get('outputs', []) for l in text_of(o).splitlines() if noise in l]
    assert len(hits) == 0, f'{len(hits)} output lines with {noise!r}, the first in cell {hits[0][0]}: {hits[0][1][:200]!r}'

def test_training_cell_holds_a_bounded_number_of_outputs(tiny):
    r, _ = tiny
    outs = r.outputs('train_run(')
    assert len(outs) <= 5, f'{len(outs)} outputs in the training cell: ' + repr([text_of(o)[:80] for o in outs[:12]])

@pytest.mark.parametrize('params, message', [
    (dict(paradigm='joint'), "paradigm='joint'"),
    (dict(data_dir='no/such/folder'), 'no/such/folder'),
    (dict(eval_sets='L1_olid,L9_mine'), "eval_sets: 'L9_mine' is not an evaluation set"),
])
def test_bad_parameters_fail_before_any_work(tmp_path, papermill, params, message):
    r = papermill('run_experiment', tmp_path/'out.ipynb', tmp_path, preset='tiny', output_dir=str(tmp_path/'outputs'), **params)
    assert r.error is not None and message in r.error, r.error
    assert not (tmp_path/'outputs').exists() or not any((tmp_path/'outputs').iterdir()), 'a run folder was created for a bad configuration'

def test_reproduce_notebook_finds_the_papermill_run_identical(tiny, tmp_path, papermill):
    "The run made by the experiment notebook, reproduced by the reproduce notebook: every metric and prediction bit-identical."
    _, run = tiny
    r = papermill('reproduce', tmp_path/'rep.ipynb', tmp_path, run=str(run), output_dir=str(tmp_path/'rep'))
    assert r.error is None, r.error
    (new,) = list((tmp_path/'rep').iterdir())
    rep = json.loads((new/'reproduction.json').read_text())
    assert (rep['verdict'], rep['different']) == ('identical', 0), {k: rep[k] for k in ('verdict', 'different', 'max_abs_difference', 'environment_differences')}
    assert rep['predictions_identical'] == {f'{s}.csv': True for s in ('L1_olid', 'L2_jigsaw', 'L3_toxigen', 'emotion')}, rep['predictions_identical']
    out = ''.join(text_of(o) for o in r.outputs('rep = reproduce('))
    assert f"verdict: identical: {rep['metrics']} of {rep['metrics']} values bit-identical" in out, out
    assert sorted(p.name for p in run.rglob('*') if p.name.startswith('reproduction')) == [], 'the original run folder was written to'
