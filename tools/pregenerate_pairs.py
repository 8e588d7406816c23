#!/usr/bin/env python
"""Write training pairs to disk shards so that training spends no CPU on augmentation.

    python tools/pregenerate_pairs.py --out data_cache/pairs/train --n 40000 [--seed 0] [--workers 1]
    python tools/pregenerate_pairs.py --out data_cache/pairs/val --n 2000 --split val
    python tools/pregenerate_pairs.py --out data_cache/pairs/train --preview preview.png   # contact sheet only
    python tools/pregenerate_pairs.py --bench 300                 # pairs/s of one worker, per source

Resumable: complete shards are kept, missing ones generated (item k of shard s
is dataset index s*shard_size+k, whatever the number of workers). Read them
with tracker.train.data.ShardDataset. --config takes a JSON file or JSON text with
tracker.train.data.DataConfig options (weights, aug, ...).
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from tracker.train.data.dataset import (DATA_VERSION, DataConfig, make_train_dataset, make_val_dataset,
                                        worker_init_fn)
from tracker.train.data.shards import ShardDataset, shard_complete, shard_name, write_shard

_DS = None


def _build(cfg: dict, split: str, n: int):
    cfg = dict(cfg)
    cfg["length" if split == "train" else "val_length"] = n
    return make_train_dataset(cfg) if split == "train" else make_val_dataset(cfg)


def _init(cfg: dict, split: str, n: int, nice: int) -> None:
    global _DS
    worker_init_fn()
    if nice:
        os.nice(nice)
    _DS = _build(cfg, split, n)


def _make_shard(job: tuple) -> tuple[int, int, float]:
    out, s, start, count, info = job
    t = time.perf_counter()
    recs = [_DS.generate(i) for i in range(start, start + count)]
    write_shard(Path(out) / shard_name(s), recs, info)
    return s, count, time.perf_counter() - t


def contact_sheet(ds, path: Path, n: int = 24, seed: int = 0) -> Path:
    """z (left) and x (right, green = target box, red cross = target centre) for n random items."""
    rng = np.random.default_rng(seed)
    idx = sorted(rng.choice(len(ds), size=min(n, len(ds)), replace=False))
    tiles = []
    names = ("video", "still", "composite")
    for i in idx:
        rec = ds.record(int(i)) if hasattr(ds, "record") else ds.generate(int(i))
        z = np.ascontiguousarray(rec["z"].transpose(1, 2, 0))
        x = np.ascontiguousarray(rec["x"].transpose(1, 2, 0))
        if not rec["neg"]:
            bx = rec["box_x"]
            cv2.rectangle(x, (int(round(bx[0])), int(round(bx[1]))), (int(round(bx[0] + bx[2] - 1)), int(round(bx[1] + bx[3] - 1))),
                          (0, 255, 0), 1)
            cy, cx = 127 + rec["target"][0], 127 + rec["target"][1]
            cv2.drawMarker(x, (int(round(cx)), int(round(cy))), (0, 0, 255), cv2.MARKER_CROSS, 12, 2)
        zt = np.full((255, 127, 3), 40, np.uint8)
        zt[:127] = z
        label = f"{int(rec['index'])} {names[int(rec['src'])]}" + (" NEG" if rec["neg"] else "")
        cv2.putText(zt, label, (2, 145), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1)
        tiles.append(np.hstack([zt, x, np.zeros((255, 4, 3), np.uint8)]))
    cols = 4
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[r:r + cols]) for r in range(0, len(tiles), cols)]
    sheet = np.vstack([np.vstack([r, np.zeros((4, r.shape[1], 3), np.uint8)]) for r in rows])
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), sheet)
    return path


def bench(cfg: dict, split: str, n: int) -> int:
    """pairs/s of one single-threaded worker; CPU-time rate too, which is what an idle core gives."""
    from tracker.train.data.dataset import PairDataset
    worker_init_fn()
    ds = _build(cfg, split, max(n, 1))
    mixes = {"mixed": ds} | {k: PairDataset({k: ds.sources[k]}, {k: 1.0}, n, ds.seed, ds.aug, split)
                             for k in ds.kinds}
    for name, d in mixes.items():
        for i in range(10):  # warm the per-process caches (stamps, backgrounds)
            d.generate(n + i)
        w, c = time.perf_counter(), time.process_time()
        for i in range(n):
            d.generate(i)
        w, c = time.perf_counter() - w, time.process_time() - c
        print(f"{name:10s} {n / w:7.1f} pairs/s wall  {n / c:7.1f} pairs/s per CPU-second", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--n", type=int, default=0, help="number of pairs (0: only --preview existing shards)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--split", choices=("train", "val"), default="train")
    ap.add_argument("--shard-size", type=int, default=1024)
    ap.add_argument("--config", default="", help="JSON file or text: DataConfig options")
    ap.add_argument("--nice", type=int, default=10, help="lower priority so a training job keeps the CPU")
    ap.add_argument("--preview", type=Path, default=None, help="write a contact sheet PNG of generated pairs")
    ap.add_argument("--force", action="store_true", help="regenerate all shards even if settings changed")
    ap.add_argument("--bench", type=int, default=0, help="only measure pairs/s of one worker over this many pairs")
    args = ap.parse_args(argv)
    if args.out is None and not args.bench:
        ap.error("--out is required")

    cfg = {}
    if args.config:
        cfg = json.loads(Path(args.config).read_text()) if Path(args.config).is_file() else json.loads(args.config)
    cfg["seed"] = args.seed
    DataConfig.from_dict(cfg)  # validate early
    if args.bench:
        return bench(cfg, args.split, args.bench)
    out: Path = args.out
    if args.n > 0:
        out.mkdir(parents=True, exist_ok=True)
        settings = {"seed": args.seed, "split": args.split, "shard_size": args.shard_size, "config": cfg,
                    "data_version": DATA_VERSION}
        meta_f = out / "meta.json"
        if meta_f.is_file():
            old = json.loads(meta_f.read_text())
            if {k: old.get(k) for k in settings} != settings:
                if not args.force:
                    print(f"error: {out} holds pairs made with other settings ({ {k: old.get(k) for k in settings} }); "
                          "use another --out or --force", file=sys.stderr)
                    return 2
                for d in out.glob("shard_*"):
                    shutil.rmtree(d)
        meta_f.write_text(json.dumps({**settings, "n": args.n, "format": "tracker.train.data.shards v1"}, indent=1))
        for d in out.glob("shard_*.tmp"):
            shutil.rmtree(d)  # left by a killed run
        n_sh = math.ceil(args.n / args.shard_size)
        jobs = []
        for s in range(n_sh):
            start = s * args.shard_size
            count = min(args.shard_size, args.n - start)
            if not shard_complete(out / shard_name(s), count):
                jobs.append((str(out), s, start, count, {"start": start, **settings}))
        done0 = sum(min(args.shard_size, args.n - s * args.shard_size) for s in range(n_sh)) - sum(j[3] for j in jobs)
        print(f"{out}: {n_sh} shards of <= {args.shard_size}, {n_sh - len(jobs)} already complete, "
              f"{len(jobs)} to generate ({args.split}, seed {args.seed}, {args.workers} worker(s))", flush=True)
        t0 = time.perf_counter()
        made = 0
        if jobs:
            if args.workers <= 1:
                _init(cfg, args.split, args.n, args.nice)
                results = map(_make_shard, jobs)
            else:
                cv2.setNumThreads(0)
                pool = mp.get_context("fork").Pool(args.workers, initializer=_init,
                                                   initargs=(cfg, args.split, args.n, args.nice))
                results = pool.imap_unordered(_make_shard, jobs)
            for s, count, dt in results:
                made += count
                el = time.perf_counter() - t0
                rate = made / el
                left = sum(j[3] for j in jobs) - made
                print(f"  {shard_name(s)}: {count} pairs in {dt:.1f} s | {done0 + made}/{args.n} "
                      f"| {rate:.1f} pairs/s | eta {left / max(rate, 1e-9) / 60:.1f} min", flush=True)
            if args.workers > 1:
                pool.close()
                pool.join()
        print(f"done: {args.n} pairs in {out} ({made} new, {time.perf_counter() - t0:.0f} s)", flush=True)
    if args.preview:
        p = contact_sheet(ShardDataset(out), args.preview, seed=args.seed)
        print(f"preview: {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
