"""Learnable gates: one scalar per unit, a logistic then a continuous Heaviside.

ChipNet's parameterisation (Tiwari et al., ICLR 2021), written afresh:

    m = sigmoid(beta * theta)                      the logistic
    z = 1 - exp(-gamma * m) + m * exp(-gamma)      continuous Heaviside of m

Both maps send 0 -> 0 and 1 -> 1. Growing ``beta`` saturates the logistic and
growing ``gamma`` makes the Heaviside step sharper, so gates drift towards 0/1
as the search goes on; a crispness loss finishes the job (see ``crispness``).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from backbones import BINARY_DIVISOR, expected_cost


def heaviside(m: torch.Tensor, gamma: float) -> torch.Tensor:
    """Continuous Heaviside approximation on [0, 1] (steeper as gamma grows)."""
    return 1 - torch.exp(-gamma * m) + m * math.exp(-gamma)


def _inverse_heaviside(z: float, gamma: float) -> float:
    """m with heaviside(m) = z, by bisection (the map is increasing on [0, 1])."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if float(heaviside(torch.tensor(mid, dtype=torch.float64), gamma)) < z:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


class UnitGates(nn.Module):
    """Gates for the named units; ``beta``/``gamma`` are set by the search's schedule."""

    def __init__(self, names: list[str], init: float = 0.5, beta: float = 1.0, gamma: float = 1.0):
        super().__init__()
        self.names = list(names)
        self.beta, self.gamma = float(beta), float(gamma)
        self.theta = nn.Parameter(torch.full((len(self.names),), self.theta_for(init)))

    def theta_for(self, z: float) -> float:
        """The theta whose gate is ``z`` at the current beta/gamma (used to initialise)."""
        z = min(max(float(z), 1e-4), 1 - 1e-4)
        m = min(max(_inverse_heaviside(z, self.gamma), 1e-6), 1 - 1e-6)
        return math.log(m / (1 - m)) / self.beta

    def logistic(self) -> torch.Tensor:
        return torch.sigmoid(self.beta * self.theta)

    def forward(self) -> torch.Tensor:
        """Gate values z, one per unit, in ``names`` order."""
        return heaviside(self.logistic(), self.gamma)

    def as_dict(self, z: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        z = self() if z is None else z
        return {n: z[i] for i, n in enumerate(self.names)}

    def values(self) -> dict[str, float]:
        with torch.no_grad():
            return {n: float(v) for n, v in zip(self.names, self())}

    def crispness(self, kind: str = "cost", weights: torch.Tensor | None = None) -> torch.Tensor:
        """A loss that is zero only for crisp gates.

        ``cost`` (default): sum_i w_i·z_i(1 - z_i) with w_i = (cost share of
        unit i)^2 + a small floor, given in ``weights``. Why the square: the
        budget term w_budget·(cost - b)^2 curves like w_budget·share^2 along
        one gate, so with w_crisp > w_budget every gate's own curve turns
        concave and it snaps to 0/1 while the total cost stays pinned near b
        (swapping units is what stays free); a crisp unit then flips only when
        the cost misses b by more than about (w_crisp / 2·w_budget)·its share.
        An unweighted crispness is either too weak for the big units or
        overrides the budget for the small ones.
        ``corners``: unweighted sum of z(1 - z).
        ``chipnet``: ChipNet's mean (z - m)^2, zero only for m in {0, 1}.
        """
        if kind in ("cost", "corners"):
            z = self()
            w = weights if (kind == "cost" and weights is not None) else torch.ones_like(z)
            return (w * z * (1 - z)).sum()
        if kind == "chipnet":
            m = self.logistic()
            return (heaviside(m, self.gamma) - m).pow(2).mean()
        raise ValueError(f"crispness must be 'cost', 'corners' or 'chipnet', not {kind!r}")


def crisp_weights(macs: dict[str, int], floor: float = 1e-4) -> torch.Tensor:
    """Per-unit weights of the ``cost`` crispness: (share of the cost a unit adds when FP)^2 + floor.

    The floor keeps the cheapest units (a 1x1 downsample is 0.3% of ResNet-16)
    from being left half-open by a weak pull.
    """
    total = float(sum(macs.values()))
    share = torch.tensor([m / total * (1 - 1 / BINARY_DIVISOR) for m in macs.values()])
    return share ** 2 + floor


def uniform_gate_for_budget(budget: float) -> float:
    """The common gate value whose expected cost equals ``budget`` (all units alike)."""
    floor = 1.0 / BINARY_DIVISOR
    return min(max((budget - floor) / (1 - floor), 0.0), 1.0)


def gates_cost(macs: dict[str, int], gates: dict[str, torch.Tensor]) -> torch.Tensor:
    """Differentiable expected budget of gated units (FP cost = 1)."""
    return expected_cost(macs, gates)


def hard_gates(modes: dict[str, str]) -> dict[str, float]:
    """Exact 0/1 gates of a spec's modes (a gated net with these equals the spec's net)."""
    return {n: 1.0 if m == "fp" else 0.0 for n, m in modes.items()}
