#!/usr/bin/env python
"""Time scoring of the 100-sequence OTB raw results of one tracker (median of runs)."""
import statistics
import time
from pathlib import Path

from eval.datasets import load_dataset
from eval.scoring import score_results

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
runs = {"load": [], "score": []}
for _ in range(5):
    t0 = time.perf_counter()
    seqs = load_dataset("otb", DATA / "otb100_anno")
    t1 = time.perf_counter()
    (s,), _ = score_results(DATA / "raw_results" / "OTB100", seqs, "otb", ["SiamFC"])
    t2 = time.perf_counter()
    runs["load"].append(t1 - t0)
    runs["score"].append(t2 - t1)
print(f"OTB100, SiamFC raw results: {s.n_seqs} sequences, AUC {s.as_json()['auc']:.4f}")
print(f"median annotation load {statistics.median(runs['load']):.3f} s, scoring {statistics.median(runs['score']):.3f} s "
      f"(5 runs)")
