"""Compact state dicts for shipping: binary weights at 1 bit, FP weights in fp16.

A binary unit only ever uses sign(W) and the per-channel scale mean|W|, so
storing the sign bits and the scale and rebuilding W = scale·sign(W) on load
gives the *same* binary forward pass at 1/32 of the size.
"""
from __future__ import annotations

import numpy as np
import torch

PACKED_SUFFIX = ".weight_bits"
SCALE_SUFFIX = ".weight_scale"
SHAPE_SUFFIX = ".weight_shape"


def compress_state(state: dict, unit_modes: dict[str, str], prefix: str = "", fp16: bool = True) -> dict:
    """Pack ``<prefix><unit>.weight`` of binary units to bits; optionally halve FP tensors."""
    out = {}
    binary = {f"{prefix}{n}.weight" for n, m in unit_modes.items() if m == "bin"}
    for k, v in state.items():
        if k in binary:
            base = k[: -len(".weight")]
            w = v.detach().float()
            bits = np.packbits((w >= 0).numpy().reshape(-1))
            out[base + PACKED_SUFFIX] = torch.from_numpy(bits)
            out[base + SCALE_SUFFIX] = w.abs().mean(dim=tuple(range(1, w.ndim)))
            out[base + SHAPE_SUFFIX] = torch.tensor(list(w.shape))
        elif fp16 and v.is_floating_point() and "running_" not in k:
            out[k] = v.detach().half()
        else:
            out[k] = v.detach()
    return out


def decompress_state(state: dict) -> dict:
    """Inverse of ``compress_state`` (float32 tensors, W = scale·sign)."""
    out = {}
    for k, v in state.items():
        if k.endswith(PACKED_SUFFIX):
            base = k[: -len(PACKED_SUFFIX)]
            shape = tuple(int(s) for s in state[base + SHAPE_SUFFIX])
            n = int(np.prod(shape))
            signs = np.unpackbits(v.numpy())[:n].astype(np.float32) * 2 - 1
            w = torch.from_numpy(signs).view(shape) * state[base + SCALE_SUFFIX].float().view(-1, *[1] * (len(shape) - 1))
            out[base + ".weight"] = w
        elif k.endswith(SCALE_SUFFIX) or k.endswith(SHAPE_SUFFIX):
            continue
        elif v.is_floating_point():
            out[k] = v.float()
        else:
            out[k] = v
    return out
