"""Run under torchrun: a few DDP steps on synthetic pairs, each rank saves its weights."""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.helpers.synthetic import TINY, SyntheticPairs  # noqa: E402
from backbones.harness import dist_info  # noqa: E402
from tracker.train import TrainConfig, train  # noqa: E402

out = Path(sys.argv[1])
cfg = TrainConfig(backbone=TINY, out=str(out), steps=4, batch_size=4, ckpt_every=2, log_every=1, val_every=1000,
                  workers=0, threads=1, warmup_steps=2, bf16=False)
model = train(cfg, SyntheticPairs(64), progress=False)
rank, world = dist_info()
# Parameters only: BN running stats are rank-local between DDP's buffer broadcasts.
torch.save({k: v.detach().clone() for k, v in model.named_parameters()}, out / f"rank{rank}.pt")
