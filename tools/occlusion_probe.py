#!/usr/bin/env python
"""Does the tracker find its target again after a full occlusion? A side-by-side probe.

    python tools/occlusion_probe.py --root ../shared/data/sequences
    python tools/occlusion_probe.py --root data_cache/heldout --trackers dimp \\
        --configs "{}" "{'lost_ratio': 0.3}" --start 30 --length 15

For every sequence (any layout `track-eval` reads), frames [start, start+length)
get a noise patch pasted over the ground-truth box (with a 30% margin): the
target is fully hidden while it keeps moving. Each tracker x parameter set
runs the same frames; the table gives, per configuration, the mean IoU before
the occlusion, the fraction of sequences where the box is back on the target
(IoU > 0.5) within ``--within`` frames of the target reappearing, and the
mean IoU over those frames. A clean run (no occluder) of the same
configuration shows what the tracker does there anyway.
"""
from __future__ import annotations

import argparse
import ast

import numpy as np


def occlude(img: np.ndarray, box, rng, margin: float = 0.3) -> np.ndarray:
    """A smooth noise patch over the box grown by ``margin`` on every side."""
    import cv2
    x, y, w, h = box
    x0, y0 = int(max(0, x - margin * w)), int(max(0, y - margin * h))
    x1, y1 = int(min(img.shape[1], x + w * (1 + margin))), int(min(img.shape[0], y + h * (1 + margin)))
    if x1 > x0 and y1 > y0:
        noise = rng.integers(60, 200, (y1 - y0, x1 - x0, 3)).astype(np.uint8)
        img[y0:y1, x0:x1] = cv2.GaussianBlur(noise, (0, 0), 3)
    return img


def run(seq, tracker_name: str, params: dict, model, budget, span, threads: int) -> np.ndarray:
    """Per-frame IoU with the ground truth (frame 1 is the init box); ``span`` None = no occluder."""
    from eval.metrics import iou
    from tracker.api import create_tracker
    t = create_tracker(tracker_name, model=model, budget=budget, threads=threads, **params)
    rng = np.random.default_rng(0)
    boxes = []
    for i in range(len(seq)):
        img = seq.frame(i)
        if span and span[0] <= i < span[1]:
            img = occlude(img.copy(), seq.gt[i], rng)
        if i == 0:
            t.init(img, seq.gt[0])
            boxes.append(seq.gt[0])
        else:
            boxes.append(t.update(img))
    return iou(np.array(boxes, dtype=np.float64), seq.gt)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 2)[2])
    p.add_argument("--root", required=True, help="sequences (a folder track-eval reads with --dataset)")
    p.add_argument("--dataset", default="folder")
    p.add_argument("--trackers", nargs="+", default=["siamfc", "dimp"])
    p.add_argument("--configs", nargs="+", default=["{}", "{'lost_ratio': 0.3}"],
                   help="tracker parameter overrides, one Python dict each")
    p.add_argument("--model", help="checkpoint (default: the zoo entry for --budget)")
    p.add_argument("--budget", type=float, default=1.0)
    p.add_argument("--start", type=int, default=30, help="first occluded frame (0-based)")
    p.add_argument("--length", type=int, default=15, help="occluded frames")
    p.add_argument("--within", type=int, default=10, help="frames after the occlusion to count a recovery")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    from eval.datasets import load_dataset
    try:
        configs = [ast.literal_eval(c) for c in args.configs]
    except (ValueError, SyntaxError) as e:
        raise SystemExit(f"occlusion_probe: --configs must be Python dicts: {e}")
    seqs = [s for s in load_dataset(args.dataset, args.root) if len(s) >= args.start + args.length + args.within]
    if not seqs:
        raise SystemExit(f"occlusion_probe: no sequence in {args.root} has {args.start + args.length + args.within} frames")
    span = (args.start, args.start + args.length)
    after = slice(span[1], span[1] + args.within)
    print(f"{len(seqs)} sequences, frames {span[0]}..{span[1] - 1} occluded, recovery = IoU > 0.5 within "
          f"{args.within} frames after\n")
    print("| tracker | params | IoU before | recovered (occluded) | IoU after (occluded) | recovered (clean) | "
          "IoU after (clean) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in args.trackers:
        for cfg in configs:
            occ = [run(s, name, cfg, args.model, args.budget, span, args.threads) for s in seqs]
            clean = [run(s, name, cfg, args.model, args.budget, None, args.threads) for s in seqs]
            before = np.mean([o[1:span[0]].mean() for o in occ])
            rec = np.mean([(o[after] > 0.5).any() for o in occ])
            rec_c = np.mean([(o[after] > 0.5).any() for o in clean])
            print(f"| {name} | {cfg or 'defaults'} | {before:.3f} | {rec:.2f} | "
                  f"{np.mean([o[after].mean() for o in occ]):.3f} | {rec_c:.2f} | "
                  f"{np.mean([o[after].mean() for o in clean]):.3f} |", flush=True)
            for s, o in zip(seqs, occ):
                print(f"|   | {s.name} | {o[1:span[0]].mean():.2f} | {'yes' if (o[after] > 0.5).any() else 'no'} | "
                      f"{o[after].mean():.2f} | | |", flush=True)


if __name__ == "__main__":
    main()
