"""The one place where MixBin meets the tracker: its SiamFC pairs, pair loss and network as a ``Task``.

The ``mixbin`` library (everything else in mixbin/) imports ``backbones`` only; this module, like the
``mixbin`` CLI and the tools that use it (tools/build_zoo.py, tools/bench_strategies.py), plugs the
tracker's training task into ``mixbin.pipeline``.
"""
from __future__ import annotations

import json
from pathlib import Path

from .pipeline import PipelineError, Task


class TensorPairs:
    """Pairs stored as one ``torch.save``d dict of stacked tensors (z, x, target, neg): small sets and tests."""

    def __init__(self, path):
        from backbones.files import safe_load
        self.d = safe_load(path)  # weights_only: a shared pairs file cannot run code
        if not isinstance(self.d, dict):
            raise ValueError(f"{path}: expected a dict of tensors z, x, target, neg")
        missing = {"z", "x", "target", "neg"} - set(self.d)
        if missing:
            raise ValueError(f"{path}: missing field(s) {sorted(missing)}")
        self.n = len(self.d["z"])

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {k: v[i] for k, v in self.d.items()}


def load_pairs(data) -> tuple:
    """(train, val or None) from DIR: train/ + val/ shard folders, a shard folder,
    train.pt (+ val.pt) tensor files, or a tracker.train.data JSON config file."""
    from tracker.train.data.paths import EvalDataError, check_training_path
    p = Path(data)
    if not p.exists():
        raise PipelineError(f"--data {data}: no such file or folder")
    try:
        check_training_path(p)  # the evaluation sequences never feed training
    except EvalDataError as e:
        raise PipelineError(str(e)) from None
    try:
        if p.is_file() and p.suffix == ".json":
            from tracker.train.data import make_datasets
            return make_datasets(json.loads(p.read_text()))
        if (p / "train.pt").is_file():
            return TensorPairs(p / "train.pt"), (TensorPairs(p / "val.pt") if (p / "val.pt").is_file() else None)
        from tracker.train.data.shards import ShardDataset
        if (p / "train").is_dir():
            return ShardDataset(p / "train"), (ShardDataset(p / "val") if (p / "val").is_dir() else None)
        if any(p.glob("shard_*")):
            return ShardDataset(p), None
    except (OSError, ValueError, KeyError) as e:
        raise PipelineError(f"--data {data}: {e}") from None
    raise PipelineError(f"--data {data}: expected train/ and val/ shard folders, shard_* folders, train.pt, "
                        "or a .json data config")


def tracking_task(fp32: bool = False) -> Task:
    """The SiamFC pair task; bf16 autocast and channels_last unless ``fp32``."""
    import torch

    from tracker.model import SiamNet
    from tracker.train import PairTask, pair_batches, validate

    def build(backbone: str):
        net = SiamNet(backbone)
        return net if fp32 else net.to(memory_format=torch.channels_last)

    pair_task = PairTask(bf16=not fp32, channels_last=not fp32)
    return Task(build_model=build, loss_fn=pair_task, load_data=load_pairs, train_batches=pair_batches,
                validate=lambda model, batches: validate(model, batches, pair_task, len(batches)))
