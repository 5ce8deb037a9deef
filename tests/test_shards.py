"""A study split into shards, run on "several machines" (here: separate output folders) and merged by copying the
folders together, gives the same tables as the study run in one piece."""
import shutil, warnings
from pathlib import Path
import pandas as pd
from aura.study import study_grid, run_grid, shard_grid, study_tables

NB = Path(__file__).resolve().parent.parent/'nbs'/'run_experiment.ipynb'

def tables(folder):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        t = study_tables(folder, n_boot=200, aso_boot=100)
    return t['summary'], t['diffs']

def test_three_shards_merged_give_the_tables_of_one_machine(tmp_path, test_env):
    grid = study_grid(seeds=(0, 1), paradigms=('masked', 'paired'), variants={}, preset='tiny', eval_sets='L1_olid,L3_toxigen')
    one = tmp_path/'one'
    st = run_grid(grid, one, NB, log=lambda s: None)
    assert st.status.tolist() == ['ran'] * 4, st
    shards = [tmp_path/f'machine{i}' for i in (1, 2, 3)]
    for i, d in enumerate(shards, 1):
        st = run_grid(grid, d, NB, log=lambda s: None, shard=f'{i}/3')
        assert st.run_name.tolist() == [g['run_name'] for g in shard_grid(grid, f'{i}/3')], st
    merged = tmp_path/'merged'; merged.mkdir()
    for d in shards:
        for run in d.iterdir():
            if run.name != 'notebooks': shutil.copytree(run, merged/run.name)
    assert sorted(p.name for p in merged.iterdir()) == sorted(g['run_name'] for g in grid)   # no run in two shards, none missing
    s1, d1 = tables(one); s3, d3 = tables(merged)
    pd.testing.assert_frame_equal(s1, s3)
    pd.testing.assert_frame_equal(d1, d3)
    assert len(d1) == 2 and set(d1['set']) == {'L1_olid', 'L3_toxigen'}, d1
    st = run_grid(grid, merged, NB, log=lambda s: None)          # the merged folder: every run finished, nothing runs again
    assert st.status.tolist() == ['done before'] * 4, st
