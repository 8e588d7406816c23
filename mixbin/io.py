"""Model checkpoints: the shipped format and the teacher formats we accept.

Shipped (zoo) format, one file per model::

    {"format": "b2track-model/1", "spec": spec.to_dict(),
     "state": compress_state(model.state_dict(), spec.units, prefix="backbone."),
     "meta": {...}}

Binary units keep only sign bits + scale (all their forward needs); FP
tensors are stored in fp16.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from backbones import Spec
from backbones.checkpoint import compress_state, decompress_state

from .loop import atomic_save, backbone_prefix, load

MODEL_FORMAT = "b2track-model/1"


class CheckpointError(ValueError):
    """A file that is not a model checkpoint we can read."""


def save_model(path, model: torch.nn.Module, spec: Spec, meta: dict | None = None) -> None:
    state = compress_state(model.state_dict(), spec.units, prefix=backbone_prefix(model))
    # Plain JSON types only, so that the tracker can load with torch.load(weights_only=True).
    meta = json.loads(json.dumps(dict(meta or {}), default=str))
    atomic_save({"format": MODEL_FORMAT, "spec": spec.to_dict(), "state": state, "meta": meta}, path)


def read_model(path) -> tuple[dict, dict | None, dict]:
    """(float32 state dict, spec dict or None, meta) of a zoo model, training checkpoint or bare state dict.

    Accepted: the zoo format above; ``{"model": state, ...}`` as written by
    tracker training (``last.pt``) and by our own resume files; a bare state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ck = load(path)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means "not a checkpoint"
        raise CheckpointError(f"{path} is not a readable torch checkpoint: {e}") from None
    if not isinstance(ck, dict):
        raise CheckpointError(f"{path}: unexpected checkpoint content ({type(ck).__name__})")
    if ck.get("format") == MODEL_FORMAT:
        return decompress_state(ck["state"]), ck.get("spec"), dict(ck.get("meta") or {})
    if "format" in ck:
        raise CheckpointError(f"{path}: unknown checkpoint format {ck['format']!r}")
    if isinstance(ck.get("model"), dict):
        meta = {k: ck[k] for k in ("backbone", "step", "config", "modes") if k in ck}
        return ck["model"], None, meta
    if ck and all(isinstance(v, torch.Tensor) for v in ck.values()):
        return ck, None, {}
    raise CheckpointError(f"{path}: no model state found (expected 'format', 'model' or a state dict)")


def backbone_name_of(spec: dict | None, meta: dict) -> str | None:
    """The backbone a checkpoint was trained with, where it says."""
    if spec and spec.get("backbone"):
        return spec["backbone"]
    if meta.get("backbone"):
        return meta["backbone"]
    cfg = meta.get("config") or {}
    return cfg.get("backbone")
