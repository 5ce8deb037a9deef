"""Every preset runs end to end on the CPU, with its own values.

Each preset of `aura.experiment.PRESETS` is run by `run_experiment` with only what a CPU without network needs changed:
the offline encoder for the Hub's `bert-base-uncased`, the bundled samples for `data_dir='hub'` (for `full`, which
needs a data folder, the bundled folder itself), fp32 where the preset asks for fp16 (a CUDA-only precision), and
the rows capped so the file stays short. Every other value must reach the run's `config.json` as the preset has it,
and the run must end with metrics for every evaluation set of its task table. The experiment notebook must build the
same configuration from `papermill -p preset <name>` as `make_config(preset=<name>)` does.

The five runs are independent, so they run in parallel, one process per core (one torch thread each, as conftest sets
for child processes), the longest (`partner_a`, up to 10 epochs) first."""
import json, math
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
import pytest
from fastcore.parallel import num_cpus
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook
from aura.core import SAMPLES_PATH
from aura.experiment import PRESETS, make_config, run_experiment
from aura.params import check_params
from aura.results import headline, read_metrics
from aura.tasks import load_tasks

NBS = Path(__file__).resolve().parent.parent/'nbs'
ROWS = 36   # rows per training source and per evaluation set: the sampler's floor is 5 rows for each of 7 emotion classes

def cpu_values(preset:str)->dict:
    "What a CPU without network changes in `preset`: the encoder, the data, fp16; plus the row caps."
    p, kw = PRESETS[preset], dict(max_train_rows=ROWS, max_eval_rows=ROWS)
    if p.get('backbone', 'offline') != 'offline': kw['backbone'] = 'offline'
    if preset == 'full': kw['data_dir'] = str(SAMPLES_PATH)
    elif p.get('data_dir', '') != '': kw['data_dir'] = ''
    if p.get('precision') == 'fp16': kw['precision'] = 'no'
    return kw

# The partners' settings as the table on the experiment page gives them: checked on the run, not read from PRESETS,
# so that a preset edited by mistake fails here.
PARTNERS = {
    'partner_a': dict(paradigm='masked', label_policy='mask', batching='interleaved', tasks='tox_emo_multilabel', val_set='main',
                      max_length=128, threshold=0.5, threshold_policy='fixed', seed=42, patience=3, epochs=10, bs=32, grad_accum=1,
                      lr_encoder=5e-5, lr_heads=1e-4, scheduler='linear', warmup=0.1, precision='auto', weighting='kendall',
                      gamma=2.0, group_by_length=False, monitor='val_tox_f1'),
    'partner_b': dict(paradigm='paired', label_policy='pseudo', batching='mixed', tasks='tox_emo', val_set='all', bs=16, grad_accum=2,
                      epochs=5, lr_encoder=2e-5, lr_heads=1e-4, scheduler='onecycle', warmup=None, threshold=0.5,
                      threshold_policy='fixed', max_length=128, seed=42, patience=0, weighting='kendall', gamma=2.0,
                      group_by_length=False, monitor='val_tox_f1'),
}
ORDER = ('partner_a', 'partner_b', 'full', 'default', 'tiny')   # longest first

def test_presets_cover_every_preset():
    assert sorted(ORDER) == sorted(PRESETS), f'presets {sorted(PRESETS)}, tested {sorted(ORDER)}'

@pytest.fixture(scope='module')
def runs(tmp_path_factory, test_env):
    "preset -> its run folder, or the exception its run raised."
    out = tmp_path_factory.mktemp('presets')
    with ProcessPoolExecutor(min(len(ORDER), num_cpus()), mp_context=mp.get_context('spawn')) as ex:
        futs = {p: ex.submit(run_experiment, quiet=True, preset=p, output_dir=str(out), run_name=p, **cpu_values(p)) for p in ORDER}
        return {p: f.exception() or f.result() for p, f in futs.items()}

def finished(runs, preset:str)->tuple:
    "(config.json, metrics.json) of `preset`'s run, failing with the run's error if it raised."
    r = runs[preset]
    if isinstance(r, BaseException): pytest.fail(f'preset={preset!r} failed on the CPU: {r!r}\n{r.__cause__ or ""}')
    return json.loads((Path(r)/'config.json').read_text()), read_metrics(r)

@pytest.mark.parametrize('preset', ORDER)
def test_preset_reaches_config_json_unchanged(runs, preset):
    cfg, _ = finished(runs, preset)
    want = {**PRESETS[preset], **cpu_values(preset), 'preset': preset}
    diff = {k: (cfg.get(k), v) for k, v in want.items() if cfg.get(k) != v}
    assert not diff, f'config.json differs from the preset (config.json, expected): {diff}'

@pytest.mark.parametrize('preset', sorted(PARTNERS))
def test_partner_settings(runs, preset):
    cfg, m = finished(runs, preset)
    diff = {k: (cfg.get(k), v) for k, v in PARTNERS[preset].items() if cfg.get(k) != v}
    assert not diff, f"{preset}: config.json differs from the partner's settings (config.json, expected): {diff}"
    emo = 'multilabel' if preset == 'partner_a' else 'multiclass'   # A: multi-hot emotion targets; B: one class
    assert (cfg['task_table']['name'], m['tasks']['emo']['kind']) == (cfg['tasks'], emo), (cfg['task_table']['name'], m['tasks']['emo'])

@pytest.mark.parametrize('preset', ORDER)
def test_preset_run_has_metrics_for_every_eval_set(runs, preset):
    cfg, m = finished(runs, preset)
    sets = list(load_tasks(cfg['tasks']).eval_sets())
    assert (sorted(m['sets']), m['skipped']) == (sorted(sets), {}), (list(m['sets']), m['skipped'])
    for k, rec in m['sets'].items():
        h = headline(rec, m['threshold_policy'])
        assert 0 < h['n'] <= ROWS and h['ci_lo'] <= h['macro_f1'] <= h['ci_hi'] and math.isfinite(h['macro_f1']), (k, h)

@pytest.mark.parametrize('preset', ORDER)
def test_preset_epochs_follow_patience(runs, preset):
    "All epochs run with patience 0; otherwise training stops `patience` epochs after the best one (or at `epochs`)."
    cfg, m = finished(runs, preset)
    want = min(cfg['epochs'], m['best_epoch'] + 1 + cfg['patience']) if cfg['patience'] else cfg['epochs']
    assert m['epochs_run'] == want and m['best_epoch'] < m['epochs_run'], (m['epochs_run'], m['best_epoch'], cfg['epochs'], cfg['patience'])

def papermill_params(**params)->dict:
    "The parameters `papermill nbs/run_experiment.ipynb -p ...` hands to `make_config`: papermill's own injection, then the notebook's parameters cells."
    nb = parameterize_notebook(load_notebook_node(str(NBS/'run_experiment.ipynb')), params)
    ns = {}
    for c in nb.cells:
        if {'parameters', 'injected-parameters'} & set(c.metadata.tags): exec(c.source, ns)
    return check_params(ns)

@pytest.mark.parametrize('preset', ORDER)
def test_papermill_keeps_the_preset(preset):
    "A parameter the user does not give with `-p` must not override the preset: the notebook's defaults are None."
    cfg = make_config(**papermill_params(preset=preset, **cpu_values(preset)))
    want = {**PRESETS[preset], **cpu_values(preset)}
    diff = {k: (getattr(cfg, k), v) for k, v in want.items() if getattr(cfg, k) != v}
    assert not diff, f'papermill -p preset {preset}: the configuration differs from the preset (configuration, preset): {diff}'

def test_paper_preset_is_retired():
    with pytest.raises(ValueError, match="preset='paper'.*retired.*partner_a.*partner_b"): make_config(preset='paper')
