"""B2Net: a stride-8 tracking backbone shaped for the packed binary kernels.

resnet16-half spends its FP floor on a 7x7 stem at half resolution (77 M
MACs, ~10% of the FP time, FP in every spec) and runs its binary layers on 32
and 64 channels, where a packed kernel fills only part of a 64-bit word and
gains 2-3x. B2Net moves the work to where binary units are fast:

- stem: one 4x4 stride-4 conv, 3 -> 64 channels (12 M MACs at 255 px): every
  pixel of a 4x4 patch reaches 64 features, so the stem is cheap and loses
  little; it is a unit like any other but the search keeps it FP;
- body: Bi-Real-style blocks, one 3x3 unit each with its own identity
  shortcut, y = x + PReLU(unit(x)) (a binary conv never loses the real-valued
  signal that flows around it), 64 channels at stride 4 and 128 at stride 8:
  whole 64-bit words, 3x3 kernels;
- a stride-2 block whose shortcut is average pooling plus a 1x1 unit;
- SiamDW-style 1-pixel crops after every stride-1 block and a 1x1 neck, so
  the output sizes equal resnet16's: 127 -> 8x8, 255 -> 24x24 (17x17 response).
"""
from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from .base import Backbone
from .registry import register
from .units import ConvUnit


class ResidualUnit(nn.Module):
    """y = crop(x + PReLU(unit(x))): one 3x3 unit around an identity shortcut."""

    def __init__(self, channels: int, **unit_kw):
        super().__init__()
        self.conv = ConvUnit(channels, channels, 3, padding=1, **unit_kw)
        self.act = nn.PReLU(channels, init=0.25)

    def forward(self, x):
        return (x + self.act(self.conv(x)))[:, :, 1:-1, 1:-1]


class DownUnit(nn.Module):
    """Stride 2, cin -> cout: PReLU(3x3 s2 unit(x)) + 1x1 unit(avg_pool(x))."""

    def __init__(self, cin: int, cout: int, **unit_kw):
        super().__init__()
        self.conv = ConvUnit(cin, cout, 3, stride=2, padding=1, **unit_kw)
        self.shortcut = ConvUnit(cin, cout, 1, **unit_kw)
        self.act = nn.PReLU(cout, init=0.25)

    def forward(self, x):
        # ceil_mode keeps the sizes of the stride-2 conv for odd inputs.
        return self.act(self.conv(x)) + self.shortcut(F.avg_pool2d(x, 2, 2, ceil_mode=True))


class B2Net(Backbone):
    stride = 8

    def __init__(self, widths=(64, 128), depths=(2, 3), **unit_kw):
        super().__init__()
        w1, w2 = widths
        self.stem = ConvUnit(3, w1, 4, stride=4, **unit_kw)
        self.relu = nn.ReLU(inplace=False)
        self.stage1 = nn.Sequential(*(ResidualUnit(w1, **unit_kw) for _ in range(depths[0])))
        self.down = DownUnit(w1, w2, **unit_kw)
        self.stage2 = nn.Sequential(*(ResidualUnit(w2, **unit_kw) for _ in range(depths[1])))
        self.neck = ConvUnit(w2, w2, 1, **unit_kw)
        self.out_channels = w2

    def forward(self, x):
        x = self.relu(self.stem(x))
        x = self.stage2(self.down(self.stage1(x)))
        return self.neck(x)


@register("b2net", "B2Net: 4x4 stem, Bi-Real 3x3 blocks at 64/128 channels, 9 units, stride 8")
def b2net(**kw):
    return B2Net(**kw)
