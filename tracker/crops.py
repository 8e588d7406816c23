"""Inference-time crops: square patches around a centre, batched over scales.

Geometry (boxes, centres, the context extent) is ``tracker.geometry``'s, the
same as training's. Padding is the image's mean colour, as in SiamFC.
"""
from __future__ import annotations


import cv2
import numpy as np

from .geometry import CONTEXT, box_to_cs, context_size, cs_to_box  # noqa: F401

# The geometry is training's too; re-exported for the trackers.
__all__ = ["CONTEXT", "FramePad", "box_to_cs", "context_size", "cs_to_box", "mean_colour", "square_crop",
           "scale_crops"]


def mean_colour(img: np.ndarray) -> tuple:
    return tuple(float(v) for v in cv2.mean(img)[: img.shape[2]])


class FramePad:
    """A frame's mean colour, the fill of crops that reach past its border, taken on first use:
    most crops lie inside the frame and never need it (the mean of a 1280x720 frame is ~0.15 ms)."""

    def __init__(self, img: np.ndarray):
        self.img, self._value = img, None

    @property
    def value(self) -> tuple:
        if self._value is None:
            self._value = mean_colour(self.img)
        return self._value


def _inside(img: np.ndarray, center, half: float) -> bool:
    """Whether every bilinear tap of a crop reaching ``half`` px each side of ``center`` lies in the
    frame (one pixel of margin covers the second tap and warpAffine's 1/32 px fixed point)."""
    h, w = img.shape[:2]
    return (center[0] - half >= 1 and center[0] + half <= w - 2
            and center[1] - half >= 1 and center[1] + half <= h - 2)


def square_crop(img: np.ndarray, center, extent: float, out_size: int, pad=None,
                flip: bool = False) -> np.ndarray:
    """The ``extent``×``extent`` image square centred on ``center``, resized to ``out_size``.

    One affine warp: no intermediate padded copy of the frame, so the cost
    does not grow with the image size.
    """
    s = out_size / extent
    c = (out_size - 1) / 2
    sx = -s if flip else s
    m = np.array([[sx, 0.0, c - sx * center[0]], [0.0, s, c - s * center[1]]])
    if pad is None:
        pad = FramePad(img)
    if isinstance(pad, FramePad):
        # A crop inside the frame never reads the fill: any value gives the same pixels.
        pad = (0.0,) * img.shape[2] if _inside(img, center, c / s) else pad.value
    # INTER_AREA would be nicer for strong downscales but warpAffine does not support it.
    return cv2.warpAffine(img, m, (out_size, out_size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=pad)


def scale_crops(img: np.ndarray, center, extents, out_size: int, pad=None) -> np.ndarray:
    """Crops at several extents around one centre, stacked (S, out, out, 3)."""
    if pad is None:
        pad = FramePad(img)
    return np.stack([square_crop(img, center, e, out_size, pad) for e in extents])


def to_tensor_batch(crops: np.ndarray):
    """(S,H,W,3) uint8 BGR -> (S,3,H,W) uint8 tensor in 0..255 (what SiamNet.embed takes).

    A permuted view, i.e. channels-last memory: what the packed kernels and
    oneDNN convolutions prefer, without a copy; SiamNet.normalise turns it
    into floats in one table lookup.
    """
    import torch
    return torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2)
