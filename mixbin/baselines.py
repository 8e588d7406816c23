"""The baselines MixBin is compared with, as unit assignments for a budget.

Each returns a ``select.Selection`` (modes with real budget <= b, and >= b - 0.02
wherever some assignment reaches that window). The choice of units is pure
(costs and scores in, modes out) so it can be checked on any backbone's real
MACs without running it; the measurements that feed the scores
(``binarization_error``, a validation-loss callable) live apart.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from backbones import BINARY_DIVISOR

from .select import (EXACT_MAX_UNITS, FLOOR_GAP, Selection, budget_of_fp_macs, capacity, priority_scores, select_modes,
                     valid_assignments)


def _share(macs: dict[str, int]) -> dict[str, float]:
    """Budget a unit adds when it is FP rather than binary."""
    total = sum(macs.values())
    return {n: m / total * (1 - 1 / BINARY_DIVISOR) for n, m in macs.items()}


def _by_priority(macs, budget, order) -> Selection:
    """The assignment in [b - 0.02, b] that honours ``order`` (first = most wanted FP) lexicographically."""
    return select_modes(macs, budget, priority_scores(list(order)), tol=FLOOR_GAP)


# -- references ---------------------------------------------------------------

def fp_modes(macs: dict[str, int]) -> dict[str, str]:
    return {n: "fp" for n in macs}


def all_binary_modes(macs: dict[str, int]) -> dict[str, str]:
    return {n: "bin" for n in macs}


# -- random -----------------------------------------------------------------------

def random_modes(macs: dict[str, int], budget: float, seed: int) -> Selection:
    """An assignment drawn uniformly (seeded) from all those with budget in [b - 0.02, b].

    Exact enumeration up to 20 units; beyond, a random order of units made FP
    while they fit, then the largest that still fit.
    """
    rng = np.random.default_rng(seed)
    if len(macs) > EXACT_MAX_UNITS:
        return _by_priority(macs, budget, list(rng.permutation(list(macs))))
    idx, decode, best = valid_assignments(macs, budget)
    modes = decode(rng.choice(idx))
    total = sum(macs.values())
    fp = sum(m for n, m in macs.items() if modes[n] == "fp")
    return Selection(modes, float(budget_of_fp_macs(fp, total)), best, True)


# -- iterative (greedy on validation loss) -------------------------------------

def iterative_modes(macs: dict[str, int], budget: float, val_loss: Callable[[dict], float],
                    direction: str = "add", log: Callable | None = None) -> tuple[Selection, list[dict]]:
    """Greedy by validation loss per unit of cost.

    ``add`` (default): start all binary; each round make FP the unit with the
    largest loss decrease per unit of cost among those that still fit.
    ``remove``: start all FP; each round binarize the unit with the smallest
    loss increase per unit of cost saved, until the budget is met.
    A final pass keeps the greedy order as a strict priority and picks the
    assignment in [b - 0.02, b] that honours it, in case the greedy set ended
    below the window (a big unit left over).
    """
    cap = capacity(macs, budget)
    share = _share(macs)
    history: list[dict] = []
    if direction == "add":
        modes = all_binary_modes(macs)
        used, cur = 0, val_loss(modes)
        order: list[str] = []
        gains: dict[str, float] = {}
        while True:
            cands = [n for n in macs if modes[n] == "bin" and used + macs[n] <= cap]
            if not cands:
                break
            trial = {n: val_loss({**modes, n: "fp"}) for n in cands}
            gains = {n: (cur - trial[n]) / share[n] for n in cands}
            pick = max(cands, key=lambda n: (gains[n], -macs[n]))
            modes[pick], used, cur = "fp", used + macs[pick], trial[pick]
            order.append(pick)
            history.append({"round": len(order), "fp": pick, "val_loss": cur, "gain_per_cost": gains[pick]})
            if log:
                log(**history[-1])
        rest = sorted((n for n in macs if n not in order), key=lambda n: -gains.get(n, -np.inf))
        return _by_priority(macs, budget, order + rest), history
    if direction == "remove":
        modes = fp_modes(macs)
        used, cur = sum(macs.values()), val_loss(modes)
        removed: list[str] = []
        harm: dict[str, float] = {}
        while used > cap:
            cands = [n for n in macs if modes[n] == "fp"]
            trial = {n: val_loss({**modes, n: "bin"}) for n in cands}
            harm = {n: (trial[n] - cur) / share[n] for n in cands}
            pick = min(cands, key=lambda n: (harm[n], -macs[n]))
            modes[pick], used, cur = "bin", used - macs[pick], trial[pick]
            removed.append(pick)
            history.append({"round": len(removed), "bin": pick, "val_loss": cur, "harm_per_cost": harm[pick]})
            if log:
                log(**history[-1])
        kept = sorted((n for n in macs if n not in removed), key=lambda n: -harm.get(n, np.inf))
        return _by_priority(macs, budget, kept + removed[::-1]), history
    raise ValueError(f"direction must be 'add' or 'remove', not {direction!r}")


# -- layer-selection heuristics -------------------------------------------------

def sensitivity_order(macs: dict[str, int], errors: dict[str, float]) -> list[str]:
    """Units by binarization error per unit of cost, most sensitive first."""
    share = _share(macs)
    return sorted(macs, key=lambda n: (-errors[n] / share[n], macs[n]))


def sensitivity_modes(macs: dict[str, int], budget: float, errors: dict[str, float]) -> Selection:
    """Hybrid-Binary-Networks style: keep FP the units whose binarization hurts most per unit of cost."""
    return _by_priority(macs, budget, sensitivity_order(macs, errors))


def first_last_modes(macs: dict[str, int], budget: float, errors: dict[str, float] | None = None) -> Selection:
    """The classic BNN rule: first and last units FP, then the most sensitive per cost (or the cheapest).

    ``macs`` must be in forward order (as ``unit_costs`` gives it). Where the
    first and last units alone exceed b, the first is kept if it fits, else
    the last, else neither.
    """
    names = list(macs)
    ends = [names[0], names[-1]] if len(names) > 1 else names[:1]
    rest = [n for n in names if n not in ends]
    if errors is not None:
        rank = sensitivity_order(macs, errors)
        rest.sort(key=rank.index)
    else:
        rest.sort(key=lambda n: macs[n])
    return _by_priority(macs, budget, ends + rest)
