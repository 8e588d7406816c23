"""What MixBin's jobs share beyond the training harness: finding the backbone, reading a loss, gate steps.

Task-agnostic by contract: a model, ``loss_fn(model, batch)`` and batches come
in from the caller (the CLI wires the tracker's); nothing here knows what a
batch holds. Resume, logs, DDP and schedules are ``backbones.harness``'s.
"""
from __future__ import annotations

import torch

from backbones import Backbone
from backbones.harness import average_grads, set_lr


def find_backbone(model: torch.nn.Module) -> Backbone:
    """The Backbone inside ``model`` (``model`` itself, ``model.backbone`` or the first found)."""
    if isinstance(model, Backbone):
        return model
    bb = getattr(model, "backbone", None)
    if isinstance(bb, Backbone):
        return bb
    for m in model.modules():
        if isinstance(m, Backbone):
            return m
    raise TypeError(f"{type(model).__name__} contains no backbones.Backbone")


def backbone_prefix(model: torch.nn.Module) -> str:
    """State-dict prefix of the backbone inside ``model`` ("backbone." for SiamNet)."""
    bb = find_backbone(model)
    for name, m in model.named_modules():
        if m is bb:
            return f"{name}." if name else ""
    raise AssertionError("unreachable")


def split_output(ret):
    """``loss_fn`` may return the loss alone or (loss, output, ...); give (loss, output)."""
    if isinstance(ret, (tuple, list)):
        return ret[0], (ret[1] if len(ret) > 1 else None)
    return ret, None


def gate_step(loss, gates, opt_gates, opt_weights, weights, grad_clip: float, weight_lr: float) -> None:
    """One optimisation step of a gate search: gates always, weights when they train too."""
    opt_gates.zero_grad(set_to_none=True)
    if opt_weights:
        opt_weights.zero_grad(set_to_none=True)
    loss.backward()
    average_grads(gates.parameters())
    if opt_weights:
        torch.nn.utils.clip_grad_norm_(weights, grad_clip)
        set_lr(opt_weights, weight_lr)
        opt_weights.step()
    opt_gates.step()
