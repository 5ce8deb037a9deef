"""Helper process for tests/test_reliability.py.

`python reliability_run.py '<json params>'` runs `aura.experiment.run_experiment(quiet=True, **params)`; with
`AURA_TEST_STEP_SLEEP=s` every training step first sleeps `s` seconds (numerics unchanged), so that a test can kill
the run at an arbitrary point in the middle of an epoch.
`python reliability_run.py save-loop PATH` writes ever newer ~40 MB checkpoints to PATH with `aura.train.save_checkpoint`
until it is killed, printing each step once it is saved."""
import json, os, sys, time

if sys.argv[1] == 'save-loop':
    import torch
    from aura.train import save_checkpoint
    for i in range(1, 10**6):
        save_checkpoint(sys.argv[2], step=i, w=torch.full((10_000_000,), float(i)))
        print(i, flush=True)
else:
    if os.environ.get('AURA_TEST_STEP_SLEEP'):
        import aura.train
        dt, fwd = float(os.environ['AURA_TEST_STEP_SLEEP']), aura.train.TrainModule.forward
        def slow_forward(self, batch): time.sleep(dt); return fwd(self, batch)
        aura.train.TrainModule.forward = slow_forward
    from aura.experiment import run_experiment
    print(run_experiment(quiet=True, **json.loads(sys.argv[1])), flush=True)
