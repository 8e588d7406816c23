"""Binary convolution on the active path (packed C++ kernel or torch twin).

Both paths compute, per output, the exact ±1 dot product
D = conv2d(pad(±1 input, +1), ±1 weights) = K − 2·popcount and then
``D*scale + bias`` rounded as two float ops, so they agree bit for bit.
"""
from __future__ import annotations

import ctypes

import torch

from . import bits, dispatch
from ._loader import Shape


class PackedWeights:
    """Sign bits of a conv weight, in the canonical and the kernel's layout."""

    def __init__(self, words: torch.Tensor, in_channels: int, groups: int):
        if words.dtype != torch.int64 or words.dim() != 4:
            raise ValueError("words must be int64 (C_out, kh, kw, words_per_group)")
        self.words = words.contiguous()
        self.in_channels, self.groups = int(in_channels), int(groups)
        self.out_channels, self.kh, self.kw = (int(s) for s in words.shape[:3])
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"channels {self.in_channels}->{self.out_channels} not divisible by groups={groups}")
        if words.shape[3] != bits.words_per_group(self.in_channels // self.groups):
            raise ValueError("word count does not match in_channels/groups")
        self._blocked = None
        self._signs = None

    @classmethod
    def from_weight(cls, weight: torch.Tensor, groups: int = 1) -> "PackedWeights":
        return cls(bits.pack_weight_signs(weight), weight.shape[1] * groups, groups)

    @property
    def merge_rows(self) -> bool:
        """Whether the kernel reads kernel rows as one concatenated bit string (few channels)."""
        return bits.merge_rows_pays(self.in_channels // self.groups, self.kw)

    @property
    def blocked(self) -> torch.Tensor:
        """Sign bits in the kernel's layout (built once, not stored in checkpoints)."""
        if self._blocked is None:
            w = self.words
            if self.merge_rows:
                w = bits.merged_row_words(w, self.in_channels // self.groups)
            self._blocked = bits.block_weights(w, self.groups)
        return self._blocked

    def signs(self) -> torch.Tensor:
        """±1 float weights (for the torch path)."""
        if self._signs is None:
            self._signs = bits.weight_signs(self.words, self.in_channels // self.groups)
        return self._signs


def output_hw(h: int, w: int, kh: int, kw: int, stride: int, padding: int) -> tuple[int, int]:
    return (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1


def _shape(x: torch.Tensor, pw: PackedWeights, stride: int, padding: int, out: torch.Tensor | None) -> Shape:
    s = Shape()
    s.n, s.cin, s.h, s.w = x.shape
    s.in_stride[:] = list(x.stride())
    s.cout, s.kh, s.kw = pw.out_channels, pw.kh, pw.kw
    s.stride, s.pad, s.groups = stride, padding, pw.groups
    s.merge_rows = int(getattr(pw, "merge_rows", False))
    if out is not None:
        s.out_stride[:] = list(out.stride())
    return s


def _ptr(t: torch.Tensor | None):
    return None if t is None else ctypes.c_void_p(t.data_ptr())


def _check(x: torch.Tensor, pw: PackedWeights, stride: int, padding: int) -> torch.Tensor:
    if x.dim() != 4 or x.shape[1] != pw.in_channels:
        raise ValueError(f"expected (N, {pw.in_channels}, H, W) input, got {tuple(x.shape)}")
    ho, wo = output_hw(x.shape[2], x.shape[3], pw.kh, pw.kw, stride, padding)
    if ho < 1 or wo < 1 or stride < 1 or padding < 0:
        raise ValueError(f"input {tuple(x.shape)} too small for kernel {pw.kh}x{pw.kw}, "
                         f"stride {stride}, padding {padding}")
    return x if x.dtype == torch.float32 else x.float()


def _empty_out(x, pw, stride, padding, layout, raw):
    if layout not in ("nchw", "nhwc"):
        raise ValueError(f"layout must be 'nchw' or 'nhwc', got {layout!r}")
    ho, wo = output_hw(x.shape[2], x.shape[3], pw.kh, pw.kw, stride, padding)
    fmt = torch.channels_last if layout == "nhwc" else torch.contiguous_format
    return torch.empty((x.shape[0], pw.out_channels, ho, wo), dtype=torch.int32 if raw else torch.float32,
                       memory_format=fmt)


def binary_conv2d(x: torch.Tensor, weights: PackedWeights, threshold: torch.Tensor | None = None,
                  scale: torch.Tensor | None = None, bias: torch.Tensor | None = None, stride: int = 1,
                  padding: int = 0, layout: str = "nchw", raw: bool = False, prelu: torch.Tensor | None = None,
                  residual: torch.Tensor | None = None) -> torch.Tensor:
    """Binary conv: bit = x >= threshold[c] (0 if None), +1 padding, then D*scale + bias.

    raw=True returns the int32 D = K − 2·popcount instead (scale/bias unused).
    layout picks the output memory format ('nhwc' = torch.channels_last).
    Any input strides are read in place (channels-last and cropped views included).

    The float output can carry a fused epilogue: ``prelu`` (per-channel slopes)
    gives torch's PReLU of it, then ``residual`` (any float tensor of the output's
    shape, e.g. a cropped view of the input) is added: the same floats as
    ``prelu(conv) + residual`` in torch, without the two extra passes over memory.
    """
    x = _check(x, weights, stride, padding)
    cout = weights.out_channels
    if not raw:
        scale = torch.ones(cout) if scale is None else scale.float().contiguous()
        bias = torch.zeros(cout) if bias is None else bias.float().contiguous()
    elif prelu is not None or residual is not None:
        raise ValueError("prelu and residual apply to the float output, not raw=True")
    slope = None if prelu is None else prelu.float().contiguous()
    if slope is not None and slope.shape != (cout,):
        raise ValueError(f"prelu needs {cout} slopes, got shape {tuple(slope.shape)}")
    if residual is not None:
        ho, wo = output_hw(x.shape[2], x.shape[3], weights.kh, weights.kw, stride, padding)
        if tuple(residual.shape) != (x.shape[0], cout, ho, wo):
            raise ValueError(f"residual must have the output's shape {(x.shape[0], cout, ho, wo)}, "
                             f"got {tuple(residual.shape)}")
        residual = residual if residual.dtype == torch.float32 else residual.float()
    thr = None if threshold is None else threshold.float().contiguous()
    if dispatch.kernel_path() == "torch":
        from .reference import binary_conv2d_torch
        return binary_conv2d_torch(x, weights, thr, scale, bias, stride, padding, layout, raw, slope, residual)
    out = _empty_out(x, weights, stride, padding, layout, raw)
    lib = dispatch.library()
    dispatch.sync_threads()
    sh = _shape(x, weights, stride, padding, out)
    rs = None if residual is None else (ctypes.c_int64 * 4)(*residual.stride())
    rc = lib.b2k_conv_ex(ctypes.byref(sh), _ptr(x), _ptr(thr), _ptr(weights.blocked), _ptr(scale), _ptr(bias),
                         _ptr(slope), _ptr(residual), rs, None if raw else _ptr(out), _ptr(out) if raw else None)
    if rc:
        raise RuntimeError(f"b2k_conv rejected shape {tuple(x.shape)} with {weights.kh}x{weights.kw} kernel")
    return out


def pack_input(x: torch.Tensor, threshold: torch.Tensor | None = None, groups: int = 1,
               padding: int = 0) -> torch.Tensor:
    """Threshold + pack an input: int64 (N, H+2p, W+2p, groups·words_per_group), +1 padding."""
    x = x if x.dtype == torch.float32 else x.float()
    thr = None if threshold is None else threshold.float().contiguous()
    if dispatch.kernel_path() == "torch":
        return bits.pack_input_torch(x, thr, groups, padding)
    n, c, h, w = x.shape
    wg = bits.words_per_group(c // groups)
    xp = torch.empty((n, h + 2 * padding, w + 2 * padding, groups * wg), dtype=torch.int64)
    pw = _PackOnly(c, groups)
    sh = _shape(x, pw, 1, padding, None)
    dispatch.sync_threads()
    if dispatch.library().b2k_pack(ctypes.byref(sh), _ptr(x), _ptr(thr), _ptr(xp)):
        raise RuntimeError("b2k_pack rejected the input shape")
    return xp


class _PackOnly:
    """Just enough of PackedWeights to describe a pack (a 1x1 kernel)."""

    def __init__(self, c, groups):
        self.in_channels, self.groups, self.out_channels, self.kh, self.kw = c, groups, groups, 1, 1


def conv_packed(xp: torch.Tensor, weights: PackedWeights, stride: int = 1, scale: torch.Tensor | None = None,
                bias: torch.Tensor | None = None, layout: str = "nchw", raw: bool = False) -> torch.Tensor:
    """Binary conv of an already packed (and padded) input from ``pack_input`` (packed path only)."""
    if dispatch.kernel_path() != "packed":
        raise RuntimeError("conv_packed needs the packed kernel")
    n, hp, wp, _ = xp.shape
    cout = weights.out_channels
    if not raw:
        scale = torch.ones(cout) if scale is None else scale.float().contiguous()
        bias = torch.zeros(cout) if bias is None else bias.float().contiguous()
    # Describe the packed buffer as an unpadded input of size (hp, wp) with pad 0.
    ho, wo = output_hw(hp, wp, weights.kh, weights.kw, stride, 0)
    fmt = torch.channels_last if layout == "nhwc" else torch.contiguous_format
    out = torch.empty((n, cout, ho, wo), dtype=torch.int32 if raw else torch.float32, memory_format=fmt)
    sh = Shape()
    sh.n, sh.cin, sh.h, sh.w = n, weights.in_channels, hp, wp
    sh.cout, sh.kh, sh.kw, sh.stride, sh.pad, sh.groups = cout, weights.kh, weights.kw, stride, 0, weights.groups
    sh.merge_rows = int(weights.merge_rows)
    sh.out_stride[:] = list(out.stride())
    dispatch.sync_threads()
    rc = dispatch.library().b2k_conv_packed(ctypes.byref(sh), _ptr(xp.contiguous()), _ptr(weights.blocked),
                                            _ptr(scale), _ptr(bias), None if raw else _ptr(out),
                                            _ptr(out) if raw else None)
    if rc:
        raise RuntimeError("b2k_conv_packed rejected the shape")
    return out
