"""Warm start of the binary paths of an FP-trained backbone.

A teacher trained all-FP never used its units' binary paths: their BatchNorms
hold default statistics and an identity affine. Before any strategy looks at
binary units (sensitivity, iterative, the search, fine-tuning) the binary path
is made a fair approximation of the FP one: its output BatchNorm takes the FP
BatchNorm's affine, and the input threshold and both binary BatchNorms
re-estimate their statistics on real inputs. Every strategy gets the same warm
start, so none is favoured.
"""
from __future__ import annotations

import itertools

import torch

from .loop import find_backbone


@torch.no_grad()
def init_binary_paths(model: torch.nn.Module, loss_fn, batches, n_batches: int = 8, copy_affine: bool = True) -> None:
    """Copy FP BN affine into ``bn_bin`` and recompute binary-path statistics on ``n_batches``.

    The network runs FP downstream (gates = 1) so each unit's binary path
    sees the inputs it has in the FP teacher; FP statistics are left as they were.
    """
    backbone = find_backbone(model)
    units = backbone.units()
    saved_modes = backbone.modes()
    saved_gates = {n: u.gate for n, u in units.items()}
    was_training = model.training
    moments = {}
    for u in units.values():
        if copy_affine:
            u.bn_bin.weight.copy_(u.bn.weight)
            u.bn_bin.bias.copy_(u.bn.bias)
        for bn in (u.in_norm, u.bn_bin):
            moments[bn] = bn.momentum
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the calibration batches
    try:
        model.eval()
        for u in units.values():
            u.in_norm.train()
            u.bn_bin.train()
        backbone.set_gates({n: 1.0 for n in units})
        for batch in itertools.islice(batches, n_batches):
            loss_fn(model, batch)
    finally:
        for bn, mom in moments.items():
            bn.momentum = mom
        backbone.set_modes(saved_modes)
        for n, u in units.items():
            u.gate = saved_gates[n]
        model.train(was_training)
