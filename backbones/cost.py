"""Cost accounting: per-unit MACs from real shapes, cost and budget.

cost = sum over units of MACs (FP unit) or MACs/64 (binary unit), the BOPs/64
convention of Bi-Real Net and ReActNet; budget = cost / cost(all FP).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction

import torch

BINARY_DIVISOR = 64


@dataclass(frozen=True)
class UnitCost:
    name: str
    macs: int
    in_shape: tuple  # (C, H, W) of the unit's input
    out_shape: tuple  # (C, H, W) of the unit's output
    kernel: int
    stride: int
    groups: int
    params: int  # conv weights


def conv_macs(kernel_h: int, kernel_w: int, c_in: int, groups: int, c_out: int, h_out: int, w_out: int) -> int:
    return kernel_h * kernel_w * (c_in // groups) * c_out * h_out * w_out


def unit_costs(backbone, input_size: int) -> "OrderedDict[str, UnitCost]":
    """MACs of every unit, measured by hooks on a dummy forward at ``input_size``."""
    units = backbone.units()
    shapes: dict[str, tuple] = {}
    hooks = [u.register_forward_hook(lambda m, i, o, n=n: shapes.__setitem__(n, (tuple(i[0].shape[1:]), tuple(o.shape[1:]))))
             for n, u in units.items()]
    saved_modes, was_training = backbone.modes(), backbone.training
    try:
        backbone.set_all("fp")  # shapes are mode-independent; FP is the cheapest forward
        backbone.eval()
        with torch.no_grad():
            backbone(torch.zeros(1, 3, input_size, input_size))
    finally:
        for h in hooks:
            h.remove()
        backbone.set_modes(saved_modes)
        backbone.train(was_training)
    out = OrderedDict()
    for n, u in units.items():
        (cin, _, _), (cout, ho, wo) = shapes[n]
        k = u.kernel_size
        out[n] = UnitCost(n, conv_macs(k, k, cin, u.groups, cout, ho, wo), shapes[n][0], shapes[n][1],
                          k, u.stride, u.groups, u.weight.numel())
    return out


def cost_of(macs: dict[str, int], modes: dict[str, str]) -> Fraction:
    """Exact cost (a Fraction, so budget 1/64 stays exactly 1/64)."""
    total = Fraction(0)
    for n, m in macs.items():
        mode = modes[n]
        if mode == "fp":
            total += m
        elif mode == "bin":
            total += Fraction(m, BINARY_DIVISOR)
        else:
            raise ValueError(f"unit {n}: mode must be 'fp' or 'bin' for a cost, got {mode!r}")
    return total


def budget_of(macs: dict[str, int], modes: dict[str, str]) -> float:
    """cost(modes) / cost(all FP), as a float."""
    return float(cost_of(macs, modes) / sum(macs.values()))


def expected_cost(macs: dict[str, int], gates: dict[str, torch.Tensor]) -> torch.Tensor:
    """Differentiable expected cost of a gated network, normalised by the FP cost."""
    total = float(sum(macs.values()))
    cost = 0.0
    for n, m in macs.items():
        z = gates[n]
        cost = cost + (m / total) * (z + (1 - z) / BINARY_DIVISOR)
    return cost


def xcorr_macs(exemplar_feat: tuple, search_feat: tuple) -> int:
    """MACs of SiamFC's cross-correlation head (reported apart from the budget)."""
    c, hz, wz = exemplar_feat
    _, hx, wx = search_feat
    return c * hz * wz * (hx - hz + 1) * (wx - wz + 1)
