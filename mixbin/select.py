"""Turning unit preferences into an FP set that meets a budget.

Every strategy ends here: given per-unit scores (higher = rather FP), pick the
FP set whose real budget is <= b and as close to b as the unit granularity
allows, and among the sets that close pick the one the scores like best.

Costs are exact integers: with S the MACs of the FP units and T the total,
cost = S + (T - S)/64, so budget <= b  <=>  63·S <= (64·b - 1)·T. Up to
``EXACT_MAX_UNITS`` free units every subset is enumerated (2^16 = 65,536
sums for ResNet-16, a few milliseconds); above that a greedy pass and a fill
stand in.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from backbones import BINARY_DIVISOR

# Assignments must land in [b - FLOOR_GAP, b] where the unit granularity allows.
FLOOR_GAP = 0.02
EXACT_MAX_UNITS = 20


class BudgetError(ValueError):
    """A budget no assignment can meet (below the all-binary cost, or outside (0, 1])."""


@dataclass
class Selection:
    modes: dict[str, str]
    budget: float  # real budget of ``modes``
    best: float  # the highest budget <= b any assignment reaches (given the fixed units)
    exact: bool  # True when every subset was enumerated

    def provenance(self, target: float) -> dict:
        d = {"budget_target": target, "budget_best_possible": self.best, "selection": "exact" if self.exact else "greedy"}
        if self.budget < target - FLOOR_GAP:
            d["budget_exception"] = (f"no assignment reaches [{target - FLOOR_GAP:.4f}, {target:.4f}]; "
                                     f"closest is {self.best:.4f}")
        return d


def capacity(macs: dict[str, int], budget: float) -> int:
    """Largest total MACs of FP units that keeps the budget <= ``budget``."""
    if not 0 < budget <= 1:
        raise BudgetError(f"budget must be in (0, 1], got {budget}")
    total = sum(macs.values())
    cap = math.floor((BINARY_DIVISOR * Fraction(budget) - 1) * total / (BINARY_DIVISOR - 1))
    if cap < 0:
        raise BudgetError(f"budget {budget} is below the all-binary cost {1 / BINARY_DIVISOR:.4f} of this backbone")
    return min(cap, total)


def budget_of_fp_macs(fp_macs, total: int):
    """Budget of an assignment from the MACs of its FP units (scalar or array)."""
    return ((BINARY_DIVISOR - 1) * np.asarray(fp_macs, dtype=np.float64) + total) / (BINARY_DIVISOR * total)


def _subset_sums(values: np.ndarray) -> np.ndarray:
    """Sums of every subset; bit i of the index says whether item i is in."""
    sums = np.zeros(1, dtype=values.dtype)
    for v in values:
        sums = np.concatenate([sums, sums + v])
    return sums


def _window(sums: np.ndarray, cap: int, total: int, budget: float, base: int, tol: float):
    """Indices of subsets whose budget is <= b and within ``tol`` of the best (and >= b - FLOOR_GAP if reachable)."""
    feasible = base + sums <= cap
    best_s = int((base + sums)[feasible].max())
    best = float(budget_of_fp_macs(best_s, total))
    lo = best - tol
    if best >= budget - FLOOR_GAP:
        lo = max(lo, budget - FLOOR_GAP)
    # A hair of slack so that float rounding never drops the best set itself.
    ok = feasible & (budget_of_fp_macs(base + sums, total) >= min(lo, best) - 1e-12)
    return np.flatnonzero(ok), best


def _free_and_fixed(macs, fixed):
    fixed = dict(fixed or {})
    unknown = set(fixed) - set(macs)
    if unknown:
        raise KeyError(f"fixed modes for unknown unit(s): {sorted(unknown)}")
    free = [n for n in macs if n not in fixed]
    base = sum(macs[n] for n, m in fixed.items() if m == "fp")
    return free, fixed, base


def _modes_from_index(names, free, fixed, idx: int) -> dict[str, str]:
    chosen = {free[i] for i in range(len(free)) if idx >> i & 1}
    return {n: fixed.get(n, "fp" if n in chosen else "bin") for n in names}


def select_modes(macs: dict[str, int], budget: float, scores: dict[str, float], tol: float = 0.0,
                 fixed: dict[str, str] | None = None) -> Selection:
    """FP set with budget <= b, within ``tol`` of the closest achievable, best by sum of scores.

    ``scores[n] > 0`` favours unit n being FP, < 0 binary; ties go to the
    higher budget. ``tol = 0`` returns a closest set; ``fixed`` pins units
    (a pinned FP set that alone exceeds b raises BudgetError).
    """
    names = list(macs)
    total = sum(macs.values())
    cap = capacity(macs, budget)
    free, fixed, base = _free_and_fixed(macs, fixed)
    if base > cap:
        raise BudgetError(f"the units pinned FP alone exceed budget {budget}")
    if len(free) > EXACT_MAX_UNITS:
        return _greedy(macs, budget, scores, fixed, free, base, cap, total)
    m = np.array([macs[n] for n in free], dtype=np.int64)
    s = np.array([float(scores.get(n, 0.0)) for n in free], dtype=np.float64)
    sums, gains = _subset_sums(m), _subset_sums(s)
    idx, best = _window(sums, cap, total, budget, base, tol)
    # Highest score, then highest cost, then lowest index (deterministic).
    order = np.lexsort((idx, -sums[idx], -gains[idx]))
    pick = int(idx[order[0]])
    modes = _modes_from_index(names, free, fixed, pick)
    return Selection(modes, float(budget_of_fp_macs(base + sums[pick], total)), best, True)


def valid_assignments(macs: dict[str, int], budget: float, fixed: dict[str, str] | None = None):
    """All assignments in the budget window [max(b - FLOOR_GAP, ...), b] (exact search only).

    Returns (list of subset indices, decoder index -> modes, best budget).
    """
    names = list(macs)
    total = sum(macs.values())
    cap = capacity(macs, budget)
    free, fixed, base = _free_and_fixed(macs, fixed)
    if len(free) > EXACT_MAX_UNITS:
        raise ValueError(f"{len(free)} free units: too many to enumerate")
    sums = _subset_sums(np.array([macs[n] for n in free], dtype=np.int64))
    idx, best = _window(sums, cap, total, budget, base, tol=FLOOR_GAP)
    return idx, (lambda i: _modes_from_index(names, free, fixed, int(i))), best


def _greedy(macs, budget, scores, fixed, free, base, cap, total) -> Selection:
    """Large backbones: take units by score while they fit, then fill with the largest that fit."""
    chosen, used = set(), base
    for n in sorted(free, key=lambda n: (-float(scores.get(n, 0.0)), macs[n])):
        if float(scores.get(n, 0.0)) > 0 and used + macs[n] <= cap:
            chosen.add(n)
            used += macs[n]
    for n in sorted((n for n in free if n not in chosen), key=lambda n: -macs[n]):
        if used + macs[n] <= cap:
            chosen.add(n)
            used += macs[n]
    modes = {n: fixed.get(n, "fp" if n in chosen else "bin") for n in macs}
    b = float(budget_of_fp_macs(used, total))
    return Selection(modes, b, b, False)


def priority_scores(order: list[str]) -> dict[str, float]:
    """Scores that make ``select_modes`` honour a strict priority list (lexicographic).

    2^(n-1-rank): one unit outranks all the units after it together.
    """
    n = len(order)
    return {name: float(2 ** (n - 1 - r)) for r, name in enumerate(order)}
