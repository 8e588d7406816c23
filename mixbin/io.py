"""Model files from MixBin's jobs: the format itself is owned by ``backbones.files``.

What this adds is knowledge of the models MixBin trains: where their backbone
sits (the prefix of its units in the state dict) and which backbone a
teacher checkpoint was trained with.
"""
from __future__ import annotations

from pathlib import Path

import torch

from backbones import Spec
from backbones.files import FileFormatError, read_model, write_model

from .loop import backbone_prefix

CheckpointError = FileFormatError  # the name mixbin's callers catch
__all__ = ["CheckpointError", "backbone_name_of", "read_model", "save_model"]


def save_model(path, model: torch.nn.Module, spec: Spec, meta: dict | None = None) -> Path:
    return write_model(path, model.state_dict(), spec.to_dict(), meta, prefix=backbone_prefix(model))


def backbone_name_of(spec: dict | None, meta: dict) -> str | None:
    """The backbone a checkpoint was trained with, where it says."""
    if spec and spec.get("backbone"):
        return spec["backbone"]
    if meta.get("backbone"):
        return meta["backbone"]
    cfg = meta.get("config") or {}
    return cfg.get("backbone")
