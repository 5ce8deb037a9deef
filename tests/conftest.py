"""Shared set-up of the end-to-end tests: offline, a tokenization cache of their own, one thread per child process,
and `papermill`, which executes a notebook of `nbs/` the way a user does."""
import json, os, time
from pathlib import Path
from typing import NamedTuple
import pytest

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT/'nbs'

# Read by huggingface_hub and datasets when they are imported, i.e. while the test modules are collected: set here.
os.environ.update(HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1')

@pytest.fixture(scope='session', autouse=True)
def test_env(tmp_path_factory):
    """For the whole session: AURA_CACHE under pytest's tmp (never the user's cache), and one thread in every child
    process (papermill kernels, runs killed and resumed, DDP ranks): identical numerics in each, no oversubscribed cores."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('AURA_CACHE', str(tmp_path_factory.mktemp('aura-cache')))
        for k, v in dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', TOKENIZERS_PARALLELISM='false').items(): mp.setenv(k, v)
        yield os.environ

class Executed(NamedTuple):
    nb: dict           # the executed notebook, as written by papermill
    error: str | None  # 'Ename: evalue' of the error the run stopped on; None if every cell ran
    seconds: float     # wall time, kernel start included

    def outputs(self, marker:str)->list:
        "Outputs of the one code cell whose source contains `marker`."
        (c,) = [c for c in self.nb['cells'] if c['cell_type'] == 'code' and marker in ''.join(c['source'])]
        return c['outputs']

    def error_cell(self)->str:
        "Source of the cell that raised."
        (c,) = [c for c in self.nb['cells'] if any(o['output_type'] == 'error' for o in c.get('outputs', []))]
        return ''.join(c['source'])

def run_papermill(name:str, out:Path, cwd:Path, timeout:int=900, **params)->Executed:
    "Execute `nbs/<name>.ipynb` with papermill in folder `cwd` (the kernel gets this process's environment)."
    import papermill as pm
    t, error = time.perf_counter(), None
    try: pm.execute_notebook(str(NBS/f'{name}.ipynb'), str(out), parameters=params, cwd=str(cwd), kernel_name='python3',
                             progress_bar=False, execution_timeout=timeout)
    except pm.PapermillExecutionError as e: error = f'{e.ename}: {e.evalue}'
    return Executed(json.loads(Path(out).read_text()), error, time.perf_counter() - t)

@pytest.fixture(scope='session')
def papermill(test_env):
    "`papermill(name, out, cwd, **params) -> Executed`: run a notebook of nbs/ as a papermill user does."
    return run_papermill
