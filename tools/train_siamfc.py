#!/usr/bin/env python
"""Train the FP SiamFC tracker (the teacher of every B2NN), resumably.

    python tools/train_siamfc.py --out runs/fp-resnet16-half --steps 8000
    torchrun --nproc_per_node 2 tools/train_siamfc.py --out runs/ddp ...   # DDP (gloo on CPU)
    python tools/train_siamfc.py --backbone b2net --distill-from tracker/zoo/mobilenetv2-s8-fp.pt --distill-weight 1 --out runs/b2n-kd
    python tools/train_siamfc.py --backbone mobilenetv2-s8 \
        --init-imagenet data_cache/pretrained/mobilenet_v2-b0353104.pth --out runs/fp-mnv2   # from ImageNet

Pairs come from pre-generated shards (``--train-shards``/``--val-shards``,
made by tools/pregenerate_pairs.py) or are generated on the fly from the
sources found by tools/prepare_data.py. Re-running with the same ``--out``
resumes from its last checkpoint.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import fields
from pathlib import Path

from tracker.train import TrainConfig, train


def _fail(msg: str) -> None:
    print(f"train_siamfc: error: {msg}", file=sys.stderr)
    sys.exit(2)


def _check_imagenet(cfg: TrainConfig) -> None:
    """Refuse an unusable --init-imagenet now (train() loads it), unless the run resumes from its own checkpoint."""
    if not cfg.init_imagenet or (Path(cfg.out) / "last.pt").exists():
        return
    if cfg.init:
        _fail("give --init or --init-imagenet, not both")
    from backbones.files import FileFormatError
    from backbones.mobilenet import load_imagenet_weights
    from tracker.model import SiamNet
    try:
        load_imagenet_weights(SiamNet(cfg.backbone).backbone, cfg.init_imagenet)
    except (FileFormatError, ValueError) as e:
        _fail(str(e))


def _check_files(cfg: TrainConfig) -> None:
    """Refuse an unusable --init, --distill-from or resume file now, before minutes of data loading."""
    from backbones.files import FileFormatError, read_model, read_run
    from tracker.train.fit import distill_teacher
    from tracker.zoo import ModelError
    try:
        if (Path(cfg.out) / "last.pt").exists():
            read_run(Path(cfg.out) / "last.pt")
        elif cfg.init:
            read_model(cfg.init)
        distill_teacher(cfg)
    except (FileFormatError, ModelError, ValueError) as e:
        _fail(str(e))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        if f.name == "data":
            continue
        t = type(getattr(defaults, f.name))
        if t is bool:
            p.add_argument(f"--{f.name.replace('_', '-')}", type=lambda s: s.lower() in ("1", "true", "yes"),
                           default=getattr(defaults, f.name), metavar="BOOL")
        else:
            p.add_argument(f"--{f.name.replace('_', '-')}", type=t, default=getattr(defaults, f.name))
    p.add_argument("--train-shards", help="folder of pre-generated training pairs")
    p.add_argument("--val-shards", help="folder of pre-generated validation pairs")
    p.add_argument("--weights", default="", help="source weights for on-the-fly pairs, e.g. video=0.5,still=0.25,composite=0.25")
    p.add_argument("--cache", default="data_cache", help="where tools/prepare_data.py put the sources")
    a = p.parse_args(argv)
    cfg = TrainConfig(**{f.name: getattr(a, f.name) for f in fields(TrainConfig) if f.name != "data"})
    _check_files(cfg)
    _check_imagenet(cfg)
    if a.train_shards:
        from tracker.train.data.shards import ShardDataset
        train_ds = ShardDataset(a.train_shards)
        val_ds = ShardDataset(a.val_shards) if a.val_shards else None
        data = {"train_shards": a.train_shards, "val_shards": a.val_shards, "pairs": len(train_ds)}
    else:
        from tracker.train.data import make_datasets
        data_cfg = {"cache": a.cache, "seed": cfg.seed}
        if a.weights:
            data_cfg["weights"] = {k: float(v) for k, v in (kv.split("=") for kv in a.weights.split(","))}
        train_ds, val_ds = make_datasets(data_cfg)
        data = data_cfg
    cfg = dataclasses.replace(cfg, data=data)  # the config itself is frozen
    from backbones.files import FileFormatError
    try:
        train(cfg, train_ds, val_ds)
    except FileFormatError as e:  # --init, or a resume file in --out, that is not ours or not safe to load
        print(f"train_siamfc: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"interrupted; resume with the same --out {cfg.out}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
