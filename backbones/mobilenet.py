"""MobileNetV2 to stride 8, every conv a unit, loadable from torchvision's ImageNet checkpoint.

The first seven stages of MobileNetV2 (Sandler et al., CVPR 2018; torchvision's
``features[:7]``): a 3x3 stride-2 stem 3 -> 32, then inverted residual blocks
(1x1 expand, 3x3 depthwise, 1x1 linear projection; ReLU6 after the first two,
none after the projection; identity shortcut when stride 1 and cin == cout)
with (expansion, channels, stride) = (1, 16, 1), (6, 24, 2), (6, 24, 1),
(6, 32, 2), (6, 32, 1), (6, 32, 1). 18 units from ImageNet plus a 1x1 neck
32 -> 128 (trained from scratch, no activation, as resnet16's neck), 19 units.

Sizes: the convs keep torchvision's padding, so the stride-8 map is 32x32 at
255 px and 16x16 at 127 px; the receptive field is 59 px and the padding
reaches 29 px in, so exactly the outer 4 features each side see padding.
Cropping those 4 (before the neck) gives resnet16's sizes, 127 -> 8x8 and
255 -> 24x24 (17x17 response), with no padding-touched feature left: the
SiamDW goal, reached with one crop because the blocks' padding must stay
what ImageNet training saw.

Depthwise units (groups = channels) export and run binary exactly (each group
sits on its own 64-bit word), but a 1-channel group fills 1 bit of a 64-bit
word (3 with row merging), so the packed kernel gains nothing on them while
the MAC cost model counts them at 1/64; they are 12% of the MACs here.

``load_imagenet_weights`` maps torchvision's state-dict keys onto the units.
Images reach a backbone as BGR normalised with ImageNet's statistics
(tracker.model.SiamNet), torchvision's as RGB: the stem's input channels are
reversed on load.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from .base import Backbone
from .files import FileFormatError, safe_load
from .registry import register
from .units import ConvUnit

# torchvision's ImageNet checkpoint; the file name carries its sha256 prefix.
IMAGENET_FILE = "mobilenet_v2-b0353104.pth"
IMAGENET_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"

# (expansion, output channels, stride) of torchvision's features[1..6].
BLOCKS = ((1, 16, 1), (6, 24, 2), (6, 24, 1), (6, 32, 2), (6, 32, 1), (6, 32, 1))
STEM_CHANNELS = 32
CROP = 4  # stride-8 features each side that see padding (see the module docstring)


def imagenet_checkpoint(cache) -> Path:
    """Where tools/prepare_data.py puts the checkpoint inside the data cache."""
    return Path(cache) / "pretrained" / IMAGENET_FILE


class InvertedResidual(nn.Module):
    """[1x1 expand, ReLU6,] 3x3 depthwise, ReLU6, 1x1 linear projection [+ x]."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int, **unit_kw):
        super().__init__()
        hidden = cin * expansion
        self.expand = ConvUnit(cin, hidden, 1, **unit_kw) if expansion != 1 else None
        self.depthwise = ConvUnit(hidden, hidden, 3, stride=stride, padding=1, groups=hidden, **unit_kw)
        self.project = ConvUnit(hidden, cout, 1, **unit_kw)
        self.act = nn.ReLU6(inplace=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = x if self.expand is None else self.act(self.expand(x))
        y = self.project(self.act(self.depthwise(y)))
        return x + y if self.residual else y


class MobileNetV2S8(Backbone):
    stride = 8

    def __init__(self, neck_channels: int = 128, **unit_kw):
        super().__init__()
        self.stem = ConvUnit(3, STEM_CHANNELS, 3, stride=2, padding=1, **unit_kw)
        self.act = nn.ReLU6(inplace=False)
        blocks, cin = [], STEM_CHANNELS
        for expansion, cout, stride in BLOCKS:
            blocks.append(InvertedResidual(cin, cout, stride, expansion, **unit_kw))
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.neck = ConvUnit(cin, neck_channels, 1, **unit_kw)
        self.out_channels = neck_channels

    def features(self, x):
        """torchvision's ``features[:7]`` output (stride 8, 32 channels, uncropped, no neck)."""
        return self.blocks(self.act(self.stem(x)))

    def forward(self, x):
        return self.neck(self.features(x)[:, :, CROP:-CROP, CROP:-CROP])


@register("mobilenetv2-s8", "MobileNetV2 features[:7] (ImageNet-loadable, depthwise units) + 1x1 neck, 19 units, stride 8")
def mobilenetv2_s8(**kw):
    return MobileNetV2S8(**kw)


# -- ImageNet weights -------------------------------------------------------

def torchvision_keys(backbone: MobileNetV2S8) -> dict[str, tuple[ConvUnit, str]]:
    """torchvision's key prefix of each conv and of its BatchNorm -> (unit, 'weight' | 'bn').

    torchvision: features.0 = [Conv2d, BN, ReLU6]; features.N.conv = [[1x1, BN, ReLU6],]
    [3x3 dw, BN, ReLU6], 1x1 Conv2d, BN (the projection's conv and BN are flat entries).
    """
    out: dict[str, tuple[ConvUnit, str]] = {"features.0.0": (backbone.stem, "weight"),
                                            "features.0.1": (backbone.stem, "bn")}
    for i, block in enumerate(backbone.blocks, start=1):
        seq = [u for u in (block.expand, block.depthwise) if u is not None]
        for j, unit in enumerate(seq):
            out[f"features.{i}.conv.{j}.0"] = (unit, "weight")
            out[f"features.{i}.conv.{j}.1"] = (unit, "bn")
        out[f"features.{i}.conv.{len(seq)}"] = (block.project, "weight")
        out[f"features.{i}.conv.{len(seq) + 1}"] = (block.project, "bn")
    return out


BN_FIELDS = ("weight", "bias", "running_mean", "running_var")


def load_imagenet_weights(backbone: MobileNetV2S8, pth_path, bgr: bool = True) -> list[str]:
    """Copy torchvision's MobileNetV2 ImageNet weights into the units' FP ``weight`` and ``bn``.

    Every key of ``features.0`` .. ``features.6`` must land on a unit of the same
    shape and every unit but the neck must be filled (else FileFormatError,
    one line); the deeper stages and the classifier are not used. The binary
    path's own parameters (in_norm, in_shift, bn_bin) and the neck stay as they
    are. ``bgr``: reverse the stem's input channels (our images are BGR).
    Returns the checkpoint keys that were copied.
    """
    if not isinstance(backbone, MobileNetV2S8):
        raise ValueError(f"ImageNet weights are MobileNetV2's: backbone {getattr(backbone, 'name', '?')!r} "
                         f"is not mobilenetv2-s8")
    state = safe_load(pth_path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FileFormatError(f"{pth_path}: not a state dict of tensors (expected torchvision's {IMAGENET_FILE})")
    return load_imagenet_state(backbone, state, str(pth_path), bgr)


def load_imagenet_state(backbone: MobileNetV2S8, state: dict, source: str = "state dict", bgr: bool = True) -> list[str]:
    """``load_imagenet_weights`` from a state dict already in memory."""
    targets = torchvision_keys(backbone)
    n_used = len(backbone.blocks) + 1
    used = sorted(k for k in state if k.startswith("features.") and k.split(".")[1].isdigit()
                  and int(k.split(".")[1]) < n_used)
    wanted = {f"{p}.weight" for p, (_, kind) in targets.items() if kind == "weight"}
    wanted |= {f"{p}.{f}" for p, (_, kind) in targets.items() if kind == "bn" for f in BN_FIELDS}
    optional = {f"{p}.num_batches_tracked" for p, (_, kind) in targets.items() if kind == "bn"}
    missing = sorted(wanted - set(state))
    unexpected = sorted(set(used) - wanted - optional)
    if missing or unexpected:
        what = [f"{kind} {', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''}"
                for kind, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
        raise FileFormatError(f"{source}: not torchvision's MobileNetV2 layout ({'; '.join(what)})")
    pairs = []  # (checkpoint key, the unit's tensor); all shapes checked before anything is copied
    for prefix, (unit, kind) in targets.items():
        if kind == "weight":
            pairs.append((f"{prefix}.weight", unit.weight))
            continue
        pairs += [(f"{prefix}.{f}", getattr(unit.bn, f)) for f in BN_FIELDS]
        if f"{prefix}.num_batches_tracked" in state:
            pairs.append((f"{prefix}.num_batches_tracked", unit.bn.num_batches_tracked))
    for key, dst in pairs:
        if state[key].shape != dst.shape:
            raise FileFormatError(f"{source}: {key} has shape {tuple(state[key].shape)}, "
                                  f"the unit expects {tuple(dst.shape)}")
    with torch.no_grad():
        for key, dst in pairs:
            src = state[key].flip(1) if key == "features.0.0.weight" and bgr else state[key]  # RGB -> BGR inputs
            dst.copy_(src.to(dst.dtype))
    return [key for key, _ in pairs]
