"""The trainer runs data-parallel (DDP over gloo, 2 CPU processes) under `accelerate launch` with no code change.

In accelerate 1.x, `accelerate launch --cpu --num_processes 2` starts a single process unless an MPI host file is
configured; `--multi_gpu` with `ACCELERATE_USE_CPU=1` starts two CPU processes through torchrun (gloo backend)."""
import json, os, socket, subprocess, sys
from pathlib import Path
import pytest
from aura.model import make_tiny_backbone

HERE = Path(__file__).parent

def free_port()->int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

@pytest.mark.parametrize('paradigm', ['masked', 'paired'])
def test_ddp_two_cpu_processes(tmp_path, paradigm):
    make_tiny_backbone(tmp_path/'tiny')   # built once here: two ranks writing it at the same time would race
    env = {**os.environ, 'ACCELERATE_USE_CPU': '1'}   # offline, one thread per rank: conftest.py
    cmd = [sys.executable, '-m', 'accelerate.commands.launch', '--multi_gpu', '--num_processes', '2', '--num_machines', '1', '--main_process_port', str(free_port()),
           '--mixed_precision', 'no', '--dynamo_backend', 'no', str(HERE/'ddp_train.py'), str(tmp_path), paradigm]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = [json.loads((tmp_path/f'rank{i}.json').read_text()) for i in (0, 1)]
    assert all(o['world'] == 2 and 'MULTI_CPU' in o['distributed'] for o in ranks), ranks
    assert ranks[0]['digest'] == ranks[1]['digest'], 'ranks ended with different weights: DDP did not synchronise'
    assert ranks[0]['weights'] == ranks[1]['weights'], 'Kendall weights differ across ranks'
    assert ranks[0]['last_loss'] < 0.9 * ranks[0]['first_loss'], ranks[0]
    assert ranks[0]['val_tox_f1'] > 0.8, ranks[0]
