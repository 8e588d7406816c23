"""The unit: one convolution + BatchNorm that runs FP, binary, or gated.

All three modes own the same parameters (names never change with the mode),
so one checkpoint format serves every budget:

- ``weight``            conv weights, shared by both paths (the binary path
                        starts from the FP teacher's weights);
- ``bn``                BatchNorm of the FP path;
- ``in_norm``/``in_shift``  the binary path's input threshold: a non-affine
                        BatchNorm plus a learnable per-channel shift before the
                        sign (ReActNet's RSign). Normalising first means the sign
                        never sees an all-positive ReLU output;
- ``bn_bin``            BatchNorm after the binary conv; its bias is the learnable
                        shift after the conv (ReActNet's RPReLU shift).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .quantizers import get_quantizer

MODES = ("fp", "bin", "gated")


class ConvUnit(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, groups: int = 1, dilation: int = 1,
                 act_quantizer: str = "approx_sign", weight_quantizer: str = "ste_sign"):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"channels {in_channels}->{out_channels} not divisible by groups={groups}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.groups, self.dilation = groups, dilation
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, kernel_size, kernel_size))
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")
        self.bn = nn.BatchNorm2d(out_channels)
        self.in_norm = nn.BatchNorm2d(in_channels, affine=False)
        self.in_shift = nn.Parameter(torch.zeros(in_channels))
        self.bn_bin = nn.BatchNorm2d(out_channels)
        self.act_quantizer = act_quantizer
        self.weight_quantizer = weight_quantizer
        self._act_q = get_quantizer(act_quantizer)
        self._w_q = get_quantizer(weight_quantizer)
        self.mode = "fp"
        # Gate z for the "gated" mode, set from outside (the MixBin search).
        self.gate: torch.Tensor | float | None = None

    # -- mode -------------------------------------------------------------
    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"unit mode must be one of {MODES}, got {value!r}")
        self._mode = value

    # -- paths ------------------------------------------------------------
    def forward_fp(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, self.weight, None, self.stride, self.padding, self.dilation, self.groups)
        return self.bn(y)

    def binarize_input(self, x: torch.Tensor) -> torch.Tensor:
        """±1 activations: sign(in_norm(x) + in_shift), before padding."""
        return self._act_q(self.in_norm(x) + self.in_shift.view(1, -1, 1, 1))

    def weight_scale(self) -> torch.Tensor:
        """Per-output-channel scale mean|W| (XNOR-Net), shape (C_out,)."""
        return self.weight.abs().mean(dim=(1, 2, 3))

    def binary_conv(self, xb: torch.Tensor) -> torch.Tensor:
        """conv2d(pad(xb, +1), sign(W)) * scale, the raw binary conv (no BN)."""
        if self.padding:
            # Pad with +1, not 0: a packed ±1 kernel cannot express 0.
            xb = F.pad(xb, (self.padding,) * 4, value=1.0)
        y = F.conv2d(xb, self._w_q(self.weight), None, self.stride, 0, self.dilation, self.groups)
        return y * self.weight_scale().view(1, -1, 1, 1)

    def forward_bin(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn_bin(self.binary_conv(self.binarize_input(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._mode == "fp":
            return self.forward_fp(x)
        if self._mode == "bin":
            return self.forward_bin(x)
        if self.gate is None:
            raise RuntimeError("gated unit has no gate: set unit.gate before the forward pass")
        z = self.gate
        return z * self.forward_fp(x) + (1 - z) * self.forward_bin(x)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, k={self.kernel_size}, s={self.stride}, "
                f"p={self.padding}, g={self.groups}, mode={self._mode}")


def output_size(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    return math.floor((size + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1
