"""SiamFC's AlexNet with BatchNorm: no padding, total stride 8, 255 -> 22x22x256."""
from __future__ import annotations

import torch.nn as nn

from .base import Backbone
from .registry import register
from .units import ConvUnit


class AlexNet(Backbone):
    stride = 8

    def __init__(self, width: float = 1.0, **unit_kw):
        super().__init__()
        c = [max(2, int(round(n * width / 2)) * 2) for n in (96, 256, 384, 384, 256)]
        self.conv1 = ConvUnit(3, c[0], 11, stride=2, **unit_kw)
        self.conv2 = ConvUnit(c[0], c[1], 5, groups=2, **unit_kw)
        self.conv3 = ConvUnit(c[1], c[2], 3, **unit_kw)
        self.conv4 = ConvUnit(c[2], c[3], 3, groups=2, **unit_kw)
        self.conv5 = ConvUnit(c[3], c[4], 3, groups=2, **unit_kw)
        self.pool = nn.MaxPool2d(3, 2)
        self.relu = nn.ReLU(inplace=False)
        self.out_channels = c[4]

    def forward(self, x):
        x = self.pool(self.relu(self.conv1(x)))
        x = self.pool(self.relu(self.conv2(x)))
        x = self.relu(self.conv3(x))
        x = self.relu(self.conv4(x))
        return self.conv5(x)  # SiamFC: BN, no ReLU, on the embedding


@register("alexnet", "SiamFC AlexNet-BN (5 units, 96-256-384-384-256, stride 8)")
def alexnet(**kw):
    return AlexNet(width=1.0, **kw)


@register("alexnet-half", "SiamFC AlexNet-BN at half width (48-128-192-192-128)")
def alexnet_half(**kw):
    return AlexNet(width=0.5, **kw)
