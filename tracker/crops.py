"""Inference-time crops: square patches around a centre, batched over scales.

Geometry (boxes, centres, the context extent) is ``tracker.geometry``'s, the
same as training's. Padding is the image's mean colour, as in SiamFC.
"""
from __future__ import annotations


import cv2
import numpy as np

from .geometry import CONTEXT, box_to_cs, context_size, cs_to_box  # noqa: F401

# The geometry is training's too; re-exported for the trackers.
__all__ = ["CONTEXT", "box_to_cs", "context_size", "cs_to_box", "mean_colour", "square_crop", "scale_crops"]


def mean_colour(img: np.ndarray) -> tuple:
    return tuple(float(v) for v in cv2.mean(img)[: img.shape[2]])


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
        pad = mean_colour(img)
    # INTER_AREA would be nicer for strong downscales but warpAffine does not support it.
    return cv2.warpAffine(img, m, (out_size, out_size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=pad)


def scale_crops(img: np.ndarray, center, extents, out_size: int, pad=None) -> np.ndarray:
    """Crops at several extents around one centre, stacked (S, out, out, 3)."""
    if pad is None:
        pad = mean_colour(img)
    return np.stack([square_crop(img, center, e, out_size, pad) for e in extents])


def to_tensor_batch(crops: np.ndarray):
    """(S,H,W,3) uint8 BGR -> (S,3,H,W) uint8 tensor in 0..255 (what SiamNet.embed takes).

    A permuted view, i.e. channels-last memory: what the packed kernels and
    oneDNN convolutions prefer, without a copy; SiamNet.normalise turns it
    into floats in one table lookup.
    """
    import torch
    return torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2)
