#!/usr/bin/env python
"""How well does the tracker's per-frame score say when it has failed?

    python tools/confidence_auc.py                                  # dev sequences (+ held-out clips if built)
    python tools/confidence_auc.py --budget 0.3 --tracker siamfc --roots ../shared/data/sequences

Runs the tracker over every sequence of the given folders (layout of ``track-eval --dataset
folder``), records its score (``tracker.score``, in [0, 1]) and lost flag (``tracker.lost``)
each frame and the IoU with the ground truth, and reports, over all scored frames (frame 1 and
frames without a valid ground truth left out):

- ROC AUC of (1 - score) as a detector of failure, failure = IoU < 0.1 (0.5 = no better
  than chance, 1 = every failed frame scored below every tracked one);
- the lost flag as a failure detector: precision and recall;
- the same ROC AUC per sequence, where a sequence has both kinds of frame.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from eval.datasets import load_dataset
from eval.metrics import iou
from tracker.api import create_tracker

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROOTS = [REPO.parent / "shared" / "data" / "sequences", REPO / "data_cache" / "heldout"]
FAIL_IOU = 0.1


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half):
    the Mann-Whitney form of the ROC area, exact, from ranks."""
    pos, neg = int(positive.sum()), int((~positive).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    s = scores[order]
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[positive].sum() - pos * (pos + 1) / 2) / (pos * neg))


def run_sequence(seq, tracker_name: str, budget: float, threads: int) -> dict:
    t = create_tracker(tracker_name, budget=budget, threads=threads)
    frames = [cv2.imread(str(f)) for f in seq.frames]
    t.init(frames[0], seq.gt[0])
    boxes, score, lost = [seq.gt[0]], [1.0], [False]
    for img in frames[1:]:
        boxes.append(t.update(img))
        score.append(t.score)
        lost.append(t.lost)
    return {"iou": iou(np.asarray(boxes, float), seq.gt), "score": np.array(score), "lost": np.array(lost),
            "valid": seq.visible & np.isfinite(seq.gt).all(1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--roots", nargs="+", default=[str(r) for r in DEFAULT_ROOTS],
                   help="folders of sequences (track-eval's 'folder' layout); missing ones are skipped")
    p.add_argument("--tracker", default="dimp")
    p.add_argument("--budget", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    seqs = [s for r in a.roots if Path(r).is_dir() for s in load_dataset("folder", r)]
    if not seqs:
        print(f"confidence_auc: error: no sequences under {', '.join(a.roots)}", file=sys.stderr)
        return 2
    per, all_s, all_f, all_l = {}, [], [], []
    for seq in seqs:
        r = run_sequence(seq, a.tracker, a.budget, a.threads)
        keep = r["valid"].copy()
        keep[0] = False  # frame 1 is the given box
        fail = r["iou"][keep] < FAIL_IOU
        per[seq.name] = {"frames": int(keep.sum()), "failed": int(fail.sum()),
                         "roc_auc": roc_auc(1 - r["score"][keep], fail)}
        all_s.append(r["score"][keep])
        all_f.append(fail)
        all_l.append(r["lost"][keep])
        print(f"{seq.name}: {per[seq.name]}", file=sys.stderr, flush=True)
    s, f, lo = np.concatenate(all_s), np.concatenate(all_f), np.concatenate(all_l)
    res = {"tracker": a.tracker, "budget": a.budget, "sequences": len(seqs), "frames": int(len(s)),
           "failed_frames": int(f.sum()), "roc_auc": roc_auc(1 - s, f),
           "lost_precision": float(f[lo].mean()) if lo.any() else float("nan"),
           "lost_recall": float(lo[f].mean()) if f.any() else float("nan"), "per_sequence": per}
    if a.json:
        print(json.dumps(res, indent=1))
    else:
        print(f"{a.tracker} budget {a.budget}: {res['frames']} frames of {len(seqs)} sequences, "
              f"{res['failed_frames']} failed (IoU < {FAIL_IOU}); ROC AUC of the score as a failure detector "
              f"{res['roc_auc']:.3f}; lost flag precision {res['lost_precision']:.3f} recall {res['lost_recall']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
