"Trains the tiny backbone on the synthetic fixture; run under `accelerate launch`. Each rank writes what it ended with."
import sys, json, hashlib
from pathlib import Path
import torch
from transformers import AutoTokenizer
from aura.tasks import load_tasks, with_params
from aura.collate import tokenize_dataset, apply_label_policy
from aura.model import build_model
from aura.train import Trainer, TrainConfig
from aura.fixtures import synthetic_mtl

out = Path(sys.argv[1]); paradigm = sys.argv[2] if len(sys.argv) > 2 else 'masked'
tiny = str(out/'tiny')   # made by the test before the launch (ranks only read it)
if not (out/'tiny').exists(): raise FileNotFoundError(f"{out/'tiny'} missing: the launching test builds the tiny backbone")
table = with_params(load_tasks('tox_emo'), gamma=0.)   # plain (B)CE: the synthetic task is learnt in a few epochs
tok = AutoTokenizer.from_pretrained(tiny)
train = tokenize_dataset(synthetic_mtl(seed=0), tok, max_length=32)
val = apply_label_policy(tokenize_dataset(synthetic_mtl(64, 64, seed=1), tok, max_length=32), 'pseudo' if paradigm == 'paired' else 'mask', table)
cfg = TrainConfig(paradigm=paradigm, epochs=6, bs=16, lr_encoder=3e-3, lr_heads=3e-3, seed=0, patience=0, save_every=0,
                  monitor='val_mean_f1', tasks=table)
tr = Trainer(build_model(tiny, tasks=table), tok, train, val, cfg, run_dir=out/'run', quiet=True).fit()
steps, epochs = tr.history()
digest = hashlib.sha256(b''.join(p.detach().cpu().numpy().tobytes() for p in tr.acc.unwrap_model(tr.module).parameters())).hexdigest()
rank = tr.acc.process_index
(out/f'rank{rank}.json').write_text(json.dumps(dict(
    rank=rank, world=tr.acc.num_processes, distributed=str(tr.acc.distributed_type), digest=digest,
    n_steps=len(steps), first_loss=float(steps.loss[:8].mean()), last_loss=float(steps.loss[-8:].mean()),
    val_tox_f1=float(epochs.val_tox_f1.max()), val_emo_f1=float(epochs.val_emo_f1.max()),
    weights=tr.loss.weighting.weights())))
