"""Measurements that feed the baselines: per-unit binarization error, loss of an assignment."""
from __future__ import annotations

import contextlib
import itertools

import torch

from .loop import find_backbone, split_output


@torch.no_grad()
def binarization_error(model: torch.nn.Module, loss_fn, batches, n_batches: int = 4) -> dict[str, float]:
    """Relative L2 error of each unit's output when that unit alone is binarized.

    One FP forward per batch: a hook on every unit runs its binary path on the
    very input the FP path got, so each unit is judged with FP units upstream
    (Hybrid Binary Networks' per-layer error). Eval mode: the binary paths'
    statistics should be calibrated first (``calibrate.init_binary_paths``).
    """
    backbone = find_backbone(model)
    units = backbone.units()
    saved, was = backbone.modes(), model.training
    err = {n: 0.0 for n in units}
    ref = {n: 0.0 for n in units}

    def hook(name):
        def fn(unit, inputs, out):
            b = unit.forward_bin(inputs[0])
            err[name] += float((b.float() - out.float()).pow(2).sum())
            ref[name] += float(out.float().pow(2).sum())
        return fn

    handles = [u.register_forward_hook(hook(n)) for n, u in units.items()]
    try:
        backbone.set_all("fp")
        model.eval()
        for batch in itertools.islice(batches, n_batches):
            loss_fn(model, batch)
    finally:
        for h in handles:
            h.remove()
        backbone.set_modes(saved)
        model.train(was)
    return {n: (err[n] / max(ref[n], 1e-12)) ** 0.5 for n in units}


@contextlib.contextmanager
def frozen_batch_stats(model: torch.nn.Module):
    """Train-mode BatchNorm (batch statistics) without touching the running statistics.

    Judging many assignments of one set of weights: batch statistics adapt to
    whichever units are binary, so no assignment is penalised by statistics
    gathered under another; momentum 0 leaves the running averages as they were.
    """
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None) for m in bns]
    was = model.training
    for m in bns:
        m.momentum = 0.0
    model.train()
    try:
        yield
    finally:
        for m, (mom, nbt) in zip(bns, saved):
            m.momentum = mom
            if nbt is not None:
                m.num_batches_tracked.copy_(nbt)
        model.train(was)


def assignment_loss(model: torch.nn.Module, loss_fn, batches: list):
    """A callable modes -> mean loss over the fixed ``batches`` (for the iterative baseline)."""
    backbone = find_backbone(model)

    @torch.no_grad()
    def evaluate(modes: dict[str, str]) -> float:
        saved = backbone.modes()
        backbone.set_modes(modes)
        try:
            with frozen_batch_stats(model):
                losses = [float(split_output(loss_fn(model, b))[0]) for b in batches]
        finally:
            backbone.set_modes(saved)
        return sum(losses) / len(losses)

    return evaluate
