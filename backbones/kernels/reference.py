"""Pure-torch twin of the packed kernel: same bits, same integers, same floats.

Used when the library is missing (or B2TRACK_KERNEL=torch). ±1 values in a
float conv are exact integers (|D| < 2^24), and ``D*scale + bias`` is two
separately rounded ops exactly as in the kernel's epilogue.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def binary_conv2d_torch(x, weights, threshold, scale, bias, stride, padding, layout, raw, prelu=None, residual=None):
    thr = torch.zeros(x.shape[1]) if threshold is None else threshold
    xs = torch.where(x >= thr.view(1, -1, 1, 1), 1.0, -1.0)
    if padding:
        xs = F.pad(xs, (padding,) * 4, value=1.0)  # +1 padding, as in training
    d = F.conv2d(xs, weights.signs(), None, stride, 0, 1, weights.groups)
    fmt = torch.channels_last if layout == "nhwc" else torch.contiguous_format
    if raw:
        return d.round().to(torch.int32).contiguous(memory_format=fmt)
    out = d * scale.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)
    if prelu is not None:
        out = F.prelu(out, prelu)
    if residual is not None:
        out = out + residual
    return out.contiguous(memory_format=fmt)
