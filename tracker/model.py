"""SiamFC network: a B2NN backbone shared by both branches and an FP xcorr head."""
from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from backbones import Backbone, create_backbone

# Images are BGR (OpenCV's order, what the training crops and video frames
# come in); ImageNet statistics listed in that order.
MEAN = (0.406 * 255, 0.456 * 255, 0.485 * 255)
STD = (0.225 * 255, 0.224 * 255, 0.229 * 255)


def xcorr(z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Batched cross-correlation of exemplar features z (B,C,h,w) over x (B',C,H,W).

    B must equal B' or be 1 (one exemplar against several search crops).
    """
    b, c, h, w = x.shape
    if z.shape[0] == 1 and b > 1:
        return F.conv2d(x, z)
    out = F.conv2d(x.reshape(1, b * c, h, w), z, groups=b)
    return out.reshape(b, 1, out.shape[-2], out.shape[-1])


class XCorrHead(nn.Module):
    """xcorr followed by a BatchNorm on the response.

    A bare ``xcorr * 0.001 + bias`` head diverged when trained from scratch
    here; normalising the response (plus a 150-step warm-up) trains stably.
    """

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm2d(1)

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.finish(xcorr(z, x), z.shape)

    def finish(self, raw: torch.Tensor, z_shape) -> torch.Tensor:
        """The head's output from a raw correlation (B, 1, H, W) computed elsewhere (e.g. through
        the FFT by a tracker that transforms the search features anyway)."""
        return self.bn(raw / (z_shape[1] * z_shape[2] * z_shape[3]) ** 0.5)


class SiamNet(nn.Module):
    def __init__(self, backbone: Backbone | str, **backbone_kw):
        super().__init__()
        if isinstance(backbone, str):
            backbone = create_backbone(backbone, **backbone_kw)
        self.backbone = backbone
        self.head = XCorrHead()
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)
        self._table = None  # normalise's uint8 lookup table, built on first use

    @property
    def stride(self) -> int:
        return self.backbone.stride

    def normalise(self, img: torch.Tensor) -> torch.Tensor:
        """(img - mean) / std in float32, keeping img's memory format.

        A channels-last uint8 batch (what the tracker's crops are) goes through a
        256-entry table per channel built with the same two float ops: the same
        floats in one pass instead of three (convert, subtract, divide)."""
        if img.dtype == torch.uint8 and img.dim() == 4 and img.shape[1] == 3 and not img.requires_grad \
                and img.permute(0, 2, 3, 1).is_contiguous():
            if self._table is None:
                self._table = ((torch.arange(256, dtype=torch.float32).view(256, 1) - self.mean.view(1, 3))
                               / self.std.view(1, 3)).numpy().reshape(256, 1, 3)
            table = self._table
            hwc = img.permute(0, 2, 3, 1).numpy()
            out = np.stack([cv2.LUT(im, table) for im in hwc]) if len(hwc) != 1 else cv2.LUT(hwc[0], table)[None]
            return torch.from_numpy(out).permute(0, 3, 1, 2)
        return (img.float() - self.mean) / self.std

    def embed(self, img: torch.Tensor) -> torch.Tensor:
        """Features of BGR images given as (B,3,H,W) floats or uint8 in 0..255."""
        return self.backbone(self.normalise(img))

    def forward(self, z_img: torch.Tensor, x_img: torch.Tensor, x_more: torch.Tensor | None = None):
        """The Siamese response of exemplars over search images. With ``x_more`` (further search-size
        images, e.g. the frames a training loss fits the online filter to), they are embedded in the
        same backbone call as ``x_img`` (one BatchNorm batch, one DDP forward) and the result is
        (response, features of x_img, features of x_more); an empty ``x_more`` gives x_img's features."""
        if x_more is None:
            return self.head(self.embed(z_img), self.embed(x_img))
        zf = self.embed(z_img)
        b = x_img.shape[0]
        feats = self.embed(torch.cat([x_img, x_more]))
        return self.head(zf, feats[:b]), feats[:b], feats[b:]


def pool_threads(n: int | None) -> int | None:
    """The compute pools' share of a tracker given ``n`` threads: from 2 on, one thread is the
    learning thread's (tracker/overlap.py) and the pools get the rest."""
    return n - 1 if n is not None and n >= 2 else n


def use_threads(n: int | None) -> None:
    """Run the tracker on ``n`` threads: torch's pool, OpenCV's and the packed kernels' alike (None:
    leave all three). OpenCV would otherwise split every small resize and remap over all cores,
    which at one thread's worth of work costs more CPU in hand-offs than it saves in time."""
    if not n:
        return
    torch.set_num_threads(int(n))
    cv2.setNumThreads(int(n))
    try:
        from backbones import kernels
    except Exception:  # noqa: BLE001 - no kernel library: torch's pool is all there is
        return
    kernels.set_num_threads(int(n))
