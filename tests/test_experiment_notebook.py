"The user's main path: the experiment notebook run through papermill, on the bundled samples and the offline encoder."
import json, os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1'}

def papermill(tmp_path, *params):
    cmd = [sys.executable, '-m', 'papermill', str(ROOT/'nbs'/'run_experiment.ipynb'), str(tmp_path/'out.ipynb'),
           '-p', 'output_dir', str(tmp_path/'outputs'), *params]
    return subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=1200, cwd=tmp_path)

def test_papermill_tiny_run_writes_a_complete_report(tmp_path):
    r = papermill(tmp_path, '-p', 'paradigm', 'paired', '-p', 'preset', 'tiny')
    assert r.returncode == 0, r.stderr[-3000:]
    (run,) = list((tmp_path/'outputs').iterdir())
    for f in ('config.json', 'env.json', 'history.csv', 'epochs.csv', 'metrics.json', 'predictions/L1_olid.csv', 'best_model/model.safetensors'):
        assert (run/f).is_file(), f
    m = json.loads((run/'metrics.json').read_text())
    assert m['paradigm'] == 'paired' and set(m['tiers']) == {'L1_olid', 'L2_jigsaw', 'L3_toxigen'}
    for t in m['tiers'].values(): assert t['ci_lo'] <= t['macro_f1'] <= t['ci_hi'] and 0 < t['floor'] < 0.5 + 1e-9
    for k in ('delta_f1', 'emotion', 'calibration', 'best_epoch', 'wall_seconds'): assert k in m, k
    nb = json.loads((tmp_path/'out.ipynb').read_text())
    assert any('injected-parameters' in c['metadata'].get('tags', []) for c in nb['cells'])

@pytest.mark.parametrize('params, message', [
    (['-p', 'paradigm', 'joint'], "paradigm='joint'"),
    (['-p', 'data_dir', 'no/such/folder'], 'no/such/folder'),
])
def test_bad_parameters_fail_before_any_work(tmp_path, params, message):
    r = papermill(tmp_path, '-p', 'preset', 'tiny', *params)
    assert r.returncode != 0
    assert message in r.stderr + r.stdout
    assert not (tmp_path/'outputs').exists() or not any((tmp_path/'outputs').iterdir()), 'a run folder was created for a bad configuration'
