"""Paired comparison of two trackers over the same sequences.

Benchmark averages over a handful of sequences move by a few hundredths when
one sequence flips, so a difference in mean AUC says little without its
spread. The sequences are the sampling unit: the per-sequence differences are
resampled with replacement (paired bootstrap) to give a confidence interval
of the mean difference, and wins / ties / losses count the sequences.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TIE = 0.005  # |difference| below this on one sequence counts as a tie


@dataclass
class PairedDiff:
    tracker: str
    baseline: str
    n: int  # sequences both trackers have results for
    mean: float  # mean of tracker - baseline
    lo: float  # bootstrap confidence interval of the mean
    hi: float
    wins: int
    ties: int
    losses: int


def bootstrap_interval(diffs, level: float = 0.95, resamples: int = 10000, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of the mean of ``diffs`` under resampling with replacement."""
    d = np.asarray(diffs, dtype=np.float64)
    if d.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(resamples, d.size))].mean(axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def paired_difference(per_seq: dict[str, float], base_per_seq: dict[str, float], tracker: str = "",
                      baseline: str = "", **bootstrap) -> PairedDiff:
    """Compare per-sequence values (e.g. AUC) on the sequences both have."""
    common = sorted(set(per_seq) & set(base_per_seq))
    d = np.array([per_seq[n] - base_per_seq[n] for n in common], dtype=np.float64)
    lo, hi = bootstrap_interval(d, **bootstrap)
    return PairedDiff(tracker, baseline, len(common), float(d.mean()) if d.size else float("nan"), lo, hi,
                      int((d > TIE).sum()), int((np.abs(d) <= TIE).sum()), int((d < -TIE).sum()))
