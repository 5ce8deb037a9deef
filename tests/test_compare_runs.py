"""The comparison notebook on a folder of runs over seeds: Holm-adjusted paired bootstraps and ASO between paradigms."""
import warnings
from aura.fixtures import write_run

def test_compare_runs_reports_holm_and_aso(tmp_path, papermill):
    for s in range(3):
        write_run(tmp_path/'runs', f'm{s}', {'paradigm': 'masked', 'seed': s}, acc=.85, seed=s)
        write_run(tmp_path/'runs', f'p{s}', {'paradigm': 'paired', 'seed': s}, acc=.7, seed=10 + s)
    r = papermill('compare_runs', tmp_path/'out.ipynb', tmp_path, output_dir=str(tmp_path/'runs'), n_boot=100)
    assert r.error is None, r.error
    (paired,) = [''.join(o['data']['text/html']) for o in r.outputs('compare_paired(') if 'data' in o]
    assert 'p_holm' in paired, paired
    (aso,) = [''.join(o['data']['text/plain']) for o in r.outputs('aso_table(') if 'data' in o]
    rows = [l.split() for l in aso.splitlines()[1:]]
    assert [(x[1], x[2], x[3]) for x in rows] == [('paired', 'masked', s) for s in ('L1_olid', 'emotion', 'L2_jigsaw', 'L3_toxigen')], aso
    assert all(float(x[7]) == 0.0 for x in rows), aso     # masked beats paired on every seed: ε_min of paired being worse is 0
