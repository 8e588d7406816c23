"""A budget of measured time instead of MACs, mapped exactly onto the MAC-based search and selection.

The search, its gates and the exact thresholding all work with a cost that is
linear in the unit modes: MACs for an FP unit, MACs/64 for a binary one. A
latency table (``backbones.latency``) gives each unit its own pair of times,
t_fp and t_bin, with no fixed ratio. Both are linear, so one maps onto the
other exactly:

    latency(modes) = sum_all t_bin + sum_FP (t_fp - t_bin)

With pseudo-MACs m_i = (t_fp_i - t_bin_i) · 64/63 (in ns, integers for the
exact subset sums) the MAC machinery's FP-dependent term is the latency's,
and the latency budget b (a share of the all-FP time T_fp) becomes the MAC
budget b' = ((b·T_fp - T_bin) + M/64) / M on those pseudo-MACs (M = their sum).
An assignment meets b' exactly when its measured time is within b·T_fp.

A unit whose packed twin measured slower than FP (a tiny layer) counts with
t_bin = t_fp: binarizing it buys no time, so the search has no reason to.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from backbones import BINARY_DIVISOR

from .select import BudgetError

NS_PER_MS = 1_000_000


@dataclass(frozen=True)
class LatencyBudget:
    latency_budget: float  # share of the all-FP units' measured time
    select_costs: dict  # unit -> pseudo-MACs, what the search and selection work with
    select_budget: float  # the budget in pseudo-MAC terms that means ``latency_budget``
    fp_ms: float  # all-FP time of the units
    floor: float  # the lowest latency budget any assignment reaches (all binary)
    table: dict = field(repr=False, compare=False)  # the latency table it was made from

    def provenance(self) -> dict:
        return {"budget_metric": "latency", "latency_budget_target": self.latency_budget,
                "latency_fp_ms": round(self.fp_ms, 4),
                "latency_table": {k: self.table.get(k) for k in ("cpu", "isa", "threads", "torch", "measured")}}

    def share(self, modes: dict[str, str]) -> float:
        """The measured time of ``modes`` as a share of the all-FP time (what the budget bounds)."""
        return latency_share(self.table, modes)


def _times(tab: dict) -> dict[str, tuple[float, float]]:
    return {n: (float(r["fp_ms"]), min(float(r["bin_ms"]), float(r["fp_ms"]))) for n, r in tab["units"].items()}


def latency_budget(tab: dict, budget: float) -> LatencyBudget:
    """Map a latency budget in (0, 1] onto pseudo-MACs and a MAC-style budget (see the module doc)."""
    if not 0.0 < budget <= 1.0:
        raise ValueError(f"budget must be in (0, 1], got {budget}")
    t = _times(tab)
    t_fp = sum(f for f, _ in t.values())
    t_bin = sum(b for _, b in t.values())
    k = BINARY_DIVISOR / (BINARY_DIVISOR - 1)
    # Every unit gets at least 1 pseudo-MAC so that the MAC machinery never divides by zero.
    m = {n: max(1, round((f - b) * k * NS_PER_MS)) for n, (f, b) in t.items()}
    total = sum(m.values())
    if budget * t_fp < t_bin:
        where = f" on {tab['cpu']}, {tab['isa']} path" if "cpu" in tab and "isa" in tab else ""
        raise BudgetError(f"latency budget {budget} is below the all-binary time ({t_bin / t_fp:.3f} of FP{where})")
    sel_budget = ((budget * t_fp - t_bin) * NS_PER_MS + total / BINARY_DIVISOR) / total
    return LatencyBudget(budget, m, min(sel_budget, 1.0), t_fp, t_bin / t_fp, tab)


def latency_share(tab: dict, modes: dict[str, str]) -> float:
    """Measured time of the units under ``modes`` as a share of their all-FP time."""
    t = _times(tab)
    return sum(t[n][0] if m == "fp" else t[n][1] for n, m in modes.items()) / sum(f for f, _ in t.values())
