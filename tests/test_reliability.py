"""Fault injection: what aura does when a session dies, a loss blows up, a disk is full, or the input is bad.

Every case here is one row of the table in nbs/12_reliability.ipynb. The runs use the tiny random backbone
(`aura.model.make_tiny_backbone`) and the `tiny` preset, so the whole file runs in a few minutes on two CPU cores."""
import errno, hashlib, json, os, shutil, signal, subprocess, sys, time, warnings
from pathlib import Path
import pandas as pd, pytest, torch

HERE = Path(__file__).resolve().parent

from aura.core import SAMPLES_PATH
from aura.data import DataError
from aura.model import make_tiny_backbone, build_model, save_model, load_model, load_tokenizer, ModelLoadError, ModelFileMissing, BackboneNotFoundError
from aura.train import save_checkpoint, load_checkpoint, NonFiniteLossError
from aura.experiment import run_experiment, make_config, start_run, load_data, RunExistsError

TIMINGS = ('train_seconds', 'wall_seconds', 'run_id', 'peak_rss_mb', 'peak_cuda_mb')   # measurements of the machine, not results
RUN = dict(preset='tiny', epochs=2, save_every=3, n_boot=100, seed=7, run_name='r')   # 8 optimizer steps per epoch

# ---------------------------------------------------------------------------------------------------- helpers
@pytest.fixture(scope='module')
def tiny(tmp_path_factory): return make_tiny_backbone(tmp_path_factory.mktemp('backbone')/'tiny')

def start(tmp, name, params, **extra):
    "Start `run_experiment(**params)` in a child process (output in tmp/name.log; environment: conftest's, plus `extra`)."
    log = open(tmp/f'{name}.log', 'w')
    return subprocess.Popen([sys.executable, str(HERE/'reliability_run.py'), json.dumps(params)], env={**os.environ, **extra},
                            stdout=log, stderr=subprocess.STDOUT, cwd=tmp)

def finish(p, tmp, name, timeout=600):
    assert p.wait(timeout) == 0, (tmp/f'{name}.log').read_text()[-3000:]

def metrics(run:Path)->dict:
    "metrics.json without the timings and the run id."
    return {k: v for k, v in json.loads((run/'metrics.json').read_text()).items() if k not in TIMINGS}

def snapshot(d:Path)->dict:
    "sha256 of every file under `d` (and the list of folders), to show a refused run touched nothing."
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else 'dir' for p in sorted(d.rglob('*'))}

@pytest.fixture
def outputs(tmp_path, tiny):
    "An output folder that already holds a finished run (`old`) and a user's file."
    out = tmp_path/'outputs'
    run = start_run(make_config(preset='tiny', backbone=tiny, output_dir=str(out), run_name='old'))
    (run/'metrics.json').write_text('{"macro_f1": 0.5}'); (run/'checkpoint.pt').write_bytes(b'old checkpoint')
    (out/'notes.txt').write_text('mine')
    return out

def refused(out:Path, before:dict, exc, match:str, **params):
    "`run_experiment(**params)` raises `exc` whose message contains `match`, and `out` is exactly as it was."
    with pytest.raises(exc) as e: run_experiment(quiet=True, output_dir=str(out), **params)
    assert match in str(e.value), str(e.value)
    assert snapshot(out) == before, 'a refused run changed the output folder'
    return str(e.value)

# ---------------------------------------------------------------------------------------------------- kill -9 and resume
@pytest.fixture(scope='module')
def runs(tmp_path_factory, tiny):
    """Two uninterrupted runs (a, b) and one killed with SIGKILL mid-epoch then resumed (k), same seed, started together."""
    tmp = tmp_path_factory.mktemp('kill')
    p = {n: dict(RUN, backbone=tiny, output_dir=str(tmp/n)) for n in ('a', 'b', 'k')}
    procs = {n: start(tmp, n, p[n]) for n in ('a', 'b')}
    victim = start(tmp, 'k', p['k'], AURA_TEST_STEP_SLEEP='0.4')
    try:
        ck, deadline, seen = tmp/'k'/'r'/'checkpoint.pt', time.time() + 300, None
        while time.time() < deadline:
            assert victim.poll() is None, 'the run ended before it could be killed: ' + (tmp/'k.log').read_text()[-2000:]
            if ck.exists():
                try: seen = load_checkpoint(ck)['state']   # read while the run keeps writing it: atomic writes, never torn
                except Exception as e: pytest.fail(f'torn read of {ck} while the run was writing it: {e!r}')
                if seen['step'] >= 3: break
            time.sleep(0.05)
        os.kill(victim.pid, signal.SIGKILL); victim.wait()
        killed = dict(returncode=victim.returncode, state=load_checkpoint(ck)['state'], files=sorted(f.name for f in ck.parent.iterdir()))
        finish(start(tmp, 'k2', p['k']), tmp, 'k2')                # same output folder and run_name: resumes
        for n, q in procs.items(): finish(q, tmp, n)
    finally:                                                       # a failure above leaves no run behind
        for q in (victim, *procs.values()):
            if q.poll() is None: q.kill(); q.wait()
    return dict(tmp=tmp, a=tmp/'a'/'r', b=tmp/'b'/'r', k=tmp/'k'/'r', killed=killed)

def test_kill9_mid_epoch_then_resume_gives_identical_metrics(runs):
    k = runs['killed']
    assert k['returncode'] == -signal.SIGKILL
    assert k['state']['epoch'] == 0 and 0 < k['state']['batch'] < 8, f"not killed mid-epoch: {k['state']}"
    assert 'metrics.json' not in k['files']
    a, r = metrics(runs['a']), metrics(runs['k'])
    assert r == a, {key: (a.get(key), r.get(key)) for key in set(a) | set(r) if a.get(key) != r.get(key)}
    for f in ('history.csv', 'epochs.csv', 'predictions/L1_olid.csv', 'predictions/emotion.csv'):
        assert (runs['a']/f).read_bytes() == (runs['k']/f).read_bytes(), f
    assert r['steps'] == 16 and len(pd.read_csv(runs['k']/'history.csv')) == 16   # history kept across the kill

def test_same_seed_twice_gives_identical_metrics(runs):
    assert metrics(runs['a']) == metrics(runs['b'])
    assert (runs['a']/'history.csv').read_bytes() == (runs['b']/'history.csv').read_bytes()
    assert metrics(runs['a'])['overlap'] == {'L1_olid': 0, 'L2_jigsaw': 0, 'L3_toxigen': 0, 'emotion': 0}

def test_finished_run_is_not_resumed_or_overwritten(runs, tiny):
    before = snapshot(runs['a'].parent)
    refused(runs['a'].parent, before, RunExistsError, 'finished run', **dict(RUN, backbone=tiny))

# ---------------------------------------------------------------------------------------------------- checkpoint writes
@pytest.mark.parametrize('fail', ['os.replace', 'os.fsync'])
def test_failed_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch, fail):
    ck = save_checkpoint(tmp_path/'checkpoint.pt', step=1, w=torch.ones(1000))
    def enospc(*a, **k): raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(os, fail.split('.')[1], enospc)            # the disk fills up while the next checkpoint is written
    with pytest.raises(OSError, match='No space left'): save_checkpoint(ck, step=2, w=torch.zeros(1000))
    monkeypatch.undo()
    c = load_checkpoint(ck)
    assert c['step'] == 1 and torch.equal(c['w'], torch.ones(1000))
    assert [p.name for p in tmp_path.iterdir()] == ['checkpoint.pt'], 'a temporary file was left behind'

def test_kill9_while_saving_a_checkpoint_keeps_the_previous_one(tmp_path):
    ck = tmp_path/'checkpoint.pt'
    p = subprocess.Popen([sys.executable, str(HERE/'reliability_run.py'), 'save-loop', str(ck)],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert p.stdout.readline().strip() == '1'                  # one checkpoint is complete
        deadline = time.time() + 120
        while not any(f.name.endswith('.tmp') for f in tmp_path.iterdir()):   # the next one is being written
            assert time.time() < deadline and p.poll() is None
        os.kill(p.pid, signal.SIGKILL)
    finally: p.kill(); p.wait()
    c = load_checkpoint(ck)
    assert c['step'] >= 1 and torch.equal(c['w'], torch.full((10_000_000,), float(c['step'])))
    # SIGKILL leaves the half-written temporary file next to it (it is never loaded; see the table)
    assert all(f.name == 'checkpoint.pt' or f.name.startswith('.checkpoint.pt.') for f in tmp_path.iterdir())

# ---------------------------------------------------------------------------------------------------- non-finite loss
def test_nan_loss_stops_with_step_and_task_and_the_notebook_says_so(tmp_path, tiny, papermill):
    r = papermill('run_experiment', tmp_path/'out.ipynb', tmp_path, preset='tiny', backbone=str(tiny), output_dir=str(tmp_path/'outputs'),
                  run_name='blowup', lr_encoder=1e12, lr_heads=1e12, lr_loss=1e12, save_every=1, n_boot=100)
    assert r.error is not None
    errs = [o for c in r.nb['cells'] if c['cell_type'] == 'code' for o in c.get('outputs', []) if o.get('output_type') == 'error']
    assert [e['ename'] for e in errs] == ['NonFiniteLossError'], errs
    msg = errs[0]['evalue']
    assert 'non-finite loss at optimizer step' in msg and "'loss_tox'" in msg and 'checkpoint.pt' in msg, msg
    run = tmp_path/'outputs'/'blowup'
    step = int(msg.split('optimizer step ')[1].split()[0])
    assert load_checkpoint(run/'checkpoint.pt')['state']['step'] == step            # the last good checkpoint is kept
    assert not (run/'metrics.json').exists()

def test_kendall_log_variance_blowup_is_reported_not_a_zero_division(tmp_path, tiny):
    with pytest.raises(NonFiniteLossError, match=r"task weight of '(tox|emo)' became .* at optimizer step \d+"):
        run_experiment(quiet=True, preset='tiny', backbone=tiny, output_dir=str(tmp_path), lr_loss=1e6, save_every=1, n_boot=100)

# ---------------------------------------------------------------------------------------------------- output folder
def test_output_dir_under_a_file_fails_before_anything(tmp_path, tiny, outputs):
    before = snapshot(outputs)
    with pytest.raises(NotADirectoryError, match='notes.txt is a file, not a folder'):
        run_experiment(quiet=True, preset='tiny', backbone=tiny, output_dir=str(outputs/'notes.txt'/'runs'))
    assert snapshot(outputs) == before

@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='uses /proc, where nobody (not even root) can create files')
def test_unwritable_output_dir_fails_before_anything(tiny):
    with pytest.raises(PermissionError, match="output_dir='/proc/aura-outputs' is not writable"):
        run_experiment(quiet=True, preset='tiny', backbone=tiny, output_dir='/proc/aura-outputs')

def test_read_only_output_dir_for_a_normal_user(tiny, outputs, monkeypatch):
    before = snapshot(outputs)
    monkeypatch.setattr(os, 'access', lambda p, mode, **k: False if mode == os.W_OK else True)   # tests run as root: simulate
    refused(outputs, before, PermissionError, 'is not writable', preset='tiny', backbone=tiny)

def test_full_disk_fails_before_anything(tiny, outputs, monkeypatch):
    before = snapshot(outputs)
    monkeypatch.setattr(shutil, 'disk_usage', lambda p: shutil._ntuple_diskusage(10 * 2**30, 10 * 2**30 - 2**20, 2**20))
    refused(outputs, before, OSError, 'less than 200 MB free', preset='tiny', backbone=tiny)

# ---------------------------------------------------------------------------------------------------- bad parameters
BAD_PARAMS = {
    'unknown paradigm':         (dict(paradigm='joint'), ValueError, "joint"),
    'unknown parameter':        (dict(learning_rate=1e-3), TypeError, "unknown parameter 'learning_rate'"),
    'epochs not an int':        (dict(epochs='two'), TypeError, "epochs='two': expected int"),
    'fractional epochs':        (dict(epochs=1.5), TypeError, 'epochs=1.5'),
    'lr not a number':          (dict(lr_encoder='fast'), TypeError, "lr_encoder='fast': expected float"),
    'bool for bs':              (dict(bs=True), TypeError, 'bs=True'),
    'negative lr_encoder':      (dict(lr_encoder=-1e-5), ValueError, 'lr_encoder=-1e-05'),
    'zero lr_heads':            (dict(lr_heads=0.0), ValueError, 'lr_heads=0.0'),
    'zero batch size':          (dict(bs=0), ValueError, 'bs=0'),
    'negative batch size':      (dict(bs=-4), ValueError, 'bs=-4'),
    'max_length over the limit': (dict(max_length=1024), ValueError, 'max_length=1024 exceeds'),
    'backbone not found offline': (dict(backbone='no-such-org/no-such-model'), BackboneNotFoundError, "backbone='no-such-org/no-such-model'"),
    'data_dir missing':         (dict(data_dir='/nonexistent/aura-data'), FileNotFoundError, "data_dir='/nonexistent/aura-data'"),
    'different run in folder':  (dict(run_name='old', seed=1), RunExistsError, 'another configuration'),
    'finished run in folder':   (dict(run_name='old'), RunExistsError, 'finished run'),
}

@pytest.mark.parametrize('case', list(BAD_PARAMS))
def test_bad_parameter_is_refused_naming_it(case, tiny, outputs):
    params, exc, match = BAD_PARAMS[case]
    before = snapshot(outputs)
    refused(outputs, before, exc, match, **{'preset': 'tiny', 'backbone': tiny, **params})

def test_data_dir_lacking_a_file_names_it(tmp_path, tiny, outputs):
    d = shutil.copytree(SAMPLES_PATH, tmp_path/'data'); (d/'goemotions'/'dev.tsv').unlink()
    before = snapshot(outputs)
    refused(outputs, before, FileNotFoundError, "lacks ['goemotions/dev.tsv']", preset='tiny', backbone=tiny, data_dir=str(d))

def test_papermill_wrong_type_is_refused_and_old_runs_untouched(tmp_path, tiny, outputs, papermill):
    before = snapshot(outputs)
    r = papermill('run_experiment', tmp_path/'out.ipynb', tmp_path, preset='tiny', backbone=str(tiny), output_dir=str(outputs), epochs='two')
    assert r.error is not None and "epochs='two': expected int" in r.error, r.error
    assert snapshot(outputs) == before

# ---------------------------------------------------------------------------------------------------- bad data
def _lines(p, f):
    l = p.read_text(encoding='utf-8').split('\n'); f(l); p.write_text('\n'.join(l), encoding='utf-8')

def _field(p, row, col, value):
    def f(l): x = l[row].split('\t'); x[col] = value(l) if callable(value) else value; l[row] = '\t'.join(x)
    _lines(p, f)

def _truncate(p):   # cut mid-record (after the first field of line 293), as a dead upload would
    l = p.read_bytes().split(b'\n'); p.write_bytes(b'\n'.join(l[:292] + [l[292].split(b'\t')[0] + b'\t']))
def _non_utf8(p): b = p.read_bytes().split(b'\n'); b[6] += b'\xff\xfe'; p.write_bytes(b'\n'.join(b))
def _drop_column(p): pd.read_parquet(p).drop(columns=['toxicity_human']).to_parquet(p)
def _bad_label(p): _lines(p, lambda l: l.__setitem__(9, '2'))
def _empty_text(p): _lines(p, lambda l: l.__setitem__(3, ' '))

BAD_DATA = {   # fault: (file, corruption, message fragments (file, row, column, problem))
    'truncated TSV':      ('goemotions/train.tsv', _truncate, ['goemotions/train.tsv, line 293', "column 'id'", 'expected 3 tab-separated fields']),
    'missing column':     ('toxigen/annotated_test.parquet', _drop_column, ['toxigen/annotated_test.parquet', "missing column 'toxicity_human'"]),
    'label outside schema': ('tweeteval-offensive/train_labels.txt', _bad_label, ['train_labels.txt, line 10', "label '2' is not one of ['0', '1']"]),
    'GoEmotions label id out of range': ('goemotions/train.tsv', lambda p: _field(p, 4, 1, '28'), ['goemotions/train.tsv, line 5', "'28' is not a comma-separated list of label ids 0..27"]),
    'non-UTF-8 bytes':    ('tweeteval-offensive/train_text.txt', _non_utf8, ['train_text.txt, line 7', "bytes b'\\xff' at byte", 'not valid UTF-8']),
    'empty text':         ('tweeteval-offensive/train_text.txt', _empty_text, ['train_text.txt, line 4', "column 'text': empty or missing text"]),
    'empty text (TSV)':   ('goemotions/train.tsv', lambda p: _field(p, 7, 0, ''), ['goemotions/train.tsv, line 8', "column 'text': empty or missing text"]),
    'duplicate ids':      ('goemotions/train.tsv', lambda p: _field(p, 7, 2, lambda l: l[3].split('\t')[2]), ['goemotions/train.tsv, line 8', "column 'id': duplicate id", 'also on line 4']),
}

@pytest.mark.parametrize('case', list(BAD_DATA))
def test_bad_data_is_refused_naming_file_row_column(case, tmp_path, tiny, outputs):
    rel, corrupt, fragments = BAD_DATA[case]
    d = shutil.copytree(SAMPLES_PATH, tmp_path/'data'); corrupt(d/rel)
    before = snapshot(outputs)
    with pytest.raises(DataError) as e: run_experiment(quiet=True, preset='tiny', backbone=tiny, data_dir=str(d), output_dir=str(outputs), run_name='new')
    for f in fragments: assert f in str(e.value), str(e.value)
    after = snapshot(outputs)
    assert after == before, 'an earlier run or file was touched, or a run folder was made before the data was checked'

def test_test_set_overlapping_training_data_warns_with_counts(tmp_path, tiny):
    d = shutil.copytree(SAMPLES_PATH, tmp_path/'data'); tw = d/'tweeteval-offensive'
    test = (tw/'test_text.txt').read_text(encoding='utf-8').split('\n')
    _lines(tw/'train_text.txt', lambda l: l.__setitem__(slice(0, 5), [t.upper() for t in test[:5]]))   # 5 test tweets leak into train
    cfg = make_config(preset='tiny', backbone=tiny, data_dir=str(d), output_dir=str(tmp_path/'out'), max_train_rows=0, max_eval_rows=0)
    n = sum(1 for t in test if t)
    with pytest.warns(UserWarning, match=f'5 of the {n} texts of L1_olid also appear in the training data'):
        data = load_data(cfg, load_tokenizer(tiny))
    assert data['overlap']['L1_olid'] == 5, data['overlap']

# ---------------------------------------------------------------------------------------------------- model folders
@pytest.fixture(scope='module')
def saved(tmp_path_factory, tiny):
    "A saved aura model, and the weights of a model with another architecture (hidden size 64)."
    tmp = tmp_path_factory.mktemp('models'); tok = load_tokenizer(tiny)
    from transformers import BertConfig, BertModel
    BertModel(BertConfig(vocab_size=len(tok), hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)).save_pretrained(tmp/'wide')
    tok.save_pretrained(tmp/'wide')
    return dict(model=save_model(build_model(tiny), tmp/'m', tok), wide=tmp/'wide', other=save_model(build_model(tmp/'wide'), tmp/'m_wide', tok))

def _copy(src, dst): return Path(shutil.copytree(src, dst))

def test_saved_model_missing_weights(tmp_path, saved):
    d = _copy(saved['model'], tmp_path/'m'); (d/'model.safetensors').unlink()
    with pytest.raises(ModelFileMissing, match=f"{d/'model.safetensors'} is missing"): load_model(d)

def test_saved_model_with_weights_of_another_architecture(tmp_path, saved):
    d = _copy(saved['model'], tmp_path/'m'); shutil.copy(saved['other']/'model.safetensors', d/'model.safetensors')
    with pytest.raises(ModelLoadError, match='does not match the architecture') as e: load_model(d)
    assert str(d/'model.safetensors') in str(e.value) and 'shape mismatches' in str(e.value)

def test_saved_model_with_a_tokenizer_that_does_not_match(tmp_path, saved):
    d = _copy(saved['model'], tmp_path/'m'); tok = load_tokenizer(d); tok.add_tokens(['zzyzx'])
    tok.save_pretrained(d)
    with pytest.raises(ModelLoadError, match=r'is not the one saved with the model|belongs to another model') as e: load_model(d)
    assert str(d) in str(e.value)

def test_backbone_missing_weights_fails_before_anything(tmp_path, tiny, outputs):
    d = _copy(tiny, tmp_path/'bb'); (d/'model.safetensors').unlink()
    refused(outputs, snapshot(outputs), BackboneNotFoundError, 'has a config.json but no weights', preset='tiny', backbone=str(d))

def test_backbone_tokenizer_that_does_not_match_fails_before_anything(tmp_path, tiny, outputs):
    from transformers import BertConfig, BertModel
    d = tmp_path/'bb'; BertModel(BertConfig(vocab_size=1000, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)).save_pretrained(d)
    load_tokenizer(tiny).save_pretrained(d)                       # a 30,522-token tokenizer on a 1,000-row embedding
    refused(outputs, snapshot(outputs), ValueError, 'the tokenizer belongs to another model', preset='tiny', backbone=str(d))

def test_backbone_with_weights_of_another_architecture_names_it(tmp_path, tiny, saved, outputs):
    d = _copy(tiny, tmp_path/'bb'); shutil.copy(saved['wide']/'model.safetensors', d/'model.safetensors')
    with pytest.raises(BackboneNotFoundError, match=str(d)):
        run_experiment(quiet=True, preset='tiny', backbone=str(d), output_dir=str(outputs))
