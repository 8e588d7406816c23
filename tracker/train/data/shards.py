"""Pregenerated pairs on disk: so the training loop spends no CPU on augmentation.

Layout: ``<dir>/meta.json`` and ``<dir>/shard_00000/{z,x,target,box_x,box_z,neg,src,index}.npy``
(plain .npy, memory-mapped when read). A shard folder exists only once it is
complete (written as ``.tmp`` then renamed), so an interrupted run resumes by
regenerating the missing shards; item k of shard s is dataset index
s·shard_size + k, so the content does not depend on how the work was split.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from backbones.files import PAIRS_FORMAT, format_problem

from .dataset import numpy_to_item

FIELDS = {"z": np.uint8, "x": np.uint8, "target": np.float32, "box_x": np.float32, "box_z": np.float32,
          "neg": np.bool_, "src": np.int8, "index": np.int64}


def shard_name(s: int) -> str:
    return f"shard_{s:05d}"


def shard_complete(path: Path, count: int) -> bool:
    try:
        info = json.loads((path / "shard.json").read_text())
    except (OSError, ValueError):
        return False
    return info.get("count") == count and all((path / f"{k}.npy").is_file() for k in FIELDS)


def write_shard(path: Path, records: list[dict], info: dict | None = None) -> None:
    """Write records (numpy items from PairDataset.generate) as one shard, atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for k, dt in FIELDS.items():
        np.save(tmp / f"{k}.npy", np.stack([np.asarray(r[k], dtype=dt) for r in records]))
    (tmp / "shard.json").write_text(json.dumps({"format": PAIRS_FORMAT, "count": len(records), **(info or {})}))
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)


class ShardDataset(torch.utils.data.Dataset):
    """Items of the pregenerated shards under ``root``, in the PairDataset item format."""

    def __init__(self, root, mmap: bool = True):
        self.root = Path(root)
        dirs = sorted(p for p in self.root.glob("shard_*") if p.is_dir() and not p.name.endswith(".tmp"))
        self.shards = []
        counts = []
        for d in dirs:
            info = json.loads((d / "shard.json").read_text()) if (d / "shard.json").is_file() else None
            if info is None:
                continue
            if "format" in info and format_problem(info["format"], PAIRS_FORMAT):  # untagged: from before the tag
                raise ValueError(f"{d / 'shard.json'}: {format_problem(info['format'], PAIRS_FORMAT)}")
            self.shards.append(d)
            counts.append(int(info["count"]))
        if not self.shards:
            raise FileNotFoundError(f"no complete shards in {self.root}")
        self.offsets = np.concatenate([[0], np.cumsum(counts)])
        self.mmap = mmap
        self._arrays: dict[int, dict] = {}  # opened lazily, per process (fork-safe)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _shard(self, s: int) -> dict:
        a = self._arrays.get(s)
        if a is None:
            a = {k: np.load(self.shards[s] / f"{k}.npy", mmap_mode="r" if self.mmap else None) for k in FIELDS}
            self._arrays[s] = a
        return a

    def record(self, i: int) -> dict:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        s = int(np.searchsorted(self.offsets, i, side="right") - 1)
        a = self._shard(s)
        k = i - int(self.offsets[s])
        return {f: np.array(a[f][k]) for f in FIELDS}

    def __getitem__(self, i: int) -> dict:
        return numpy_to_item(self.record(int(i)))

    def __getstate__(self):  # never ship open memmaps to worker processes
        st = self.__dict__.copy()
        st["_arrays"] = {}
        return st
