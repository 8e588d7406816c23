"""ResNet-16: ResNet-18's basic blocks up to layer3, cropped for Siamese tracking.

SiamDW-style (Zhang & Peng, CVPR 2019): padding inside the blocks, then a
1-pixel crop of every stride-1 residual block's output so that
padding-affected border features do not leak into the correlation; stride 8
(layer3 keeps stride 1); a 1x1 neck. 16 units: conv1, 4 convs in layer1,
4 + downsample in layer2, 4 + downsample in layer3, and the neck, so the
MixBin search space has 2^16 = 65,536 assignments.

Sizes: 127 -> 8x8 features, 255 -> 24x24, a 17x17 response like SiamFC.
"""
from __future__ import annotations

import torch.nn as nn

from .base import Backbone
from .registry import register
from .units import ConvUnit


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, crop: bool, **unit_kw):
        super().__init__()
        self.conv1 = ConvUnit(cin, cout, 3, stride=stride, padding=1, **unit_kw)
        self.conv2 = ConvUnit(cout, cout, 3, padding=1, **unit_kw)
        self.downsample = ConvUnit(cin, cout, 1, stride=stride, **unit_kw) if (stride != 1 or cin != cout) else None
        self.relu = nn.ReLU(inplace=False)
        self.crop = crop

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.conv2(self.relu(self.conv1(x))) + shortcut)
        if self.crop:
            y = y[:, :, 1:-1, 1:-1]
        return y


class ResNet16(Backbone):
    stride = 8

    def __init__(self, width: float = 1.0, **unit_kw):
        super().__init__()
        w1, w2, w3 = (max(8, int(round(n * width))) for n in (64, 128, 256))
        self.conv1 = ConvUnit(3, w1, 7, stride=2, padding=3, **unit_kw)
        self.relu = nn.ReLU(inplace=False)
        self.pool = nn.MaxPool2d(3, 2, padding=1)
        self.layer1 = nn.Sequential(BasicBlock(w1, w1, 1, True, **unit_kw), BasicBlock(w1, w1, 1, True, **unit_kw))
        # The downsampling block is not cropped: its stride already halves the border.
        self.layer2 = nn.Sequential(BasicBlock(w1, w2, 2, False, **unit_kw), BasicBlock(w2, w2, 1, True, **unit_kw))
        self.layer3 = nn.Sequential(BasicBlock(w2, w3, 1, True, **unit_kw), BasicBlock(w3, w3, 1, True, **unit_kw))
        self.neck = ConvUnit(w3, w3, 1, **unit_kw)
        self.out_channels = w3

    def forward(self, x):
        x = self.pool(self.relu(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.neck(x)


@register("resnet16", "ResNet-16 (ResNet-18 blocks to layer3, CIR crops, 16 units, stride 8)")
def resnet16(**kw):
    return ResNet16(width=1.0, **kw)


@register("resnet16-half", "ResNet-16 at half width (32-64-128 channels)")
def resnet16_half(**kw):
    return ResNet16(width=0.5, **kw)
