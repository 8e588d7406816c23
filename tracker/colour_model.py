"""Colour histograms of target and surroundings: a per-position target likelihood (Staple's second cue).

Bertinetto et al., "Staple: Complementary Learners for Real-Time Tracking"
(CVPR 2016): a template filter is precise but brittle under deformation and
motion blur; a colour model ignores shape, so it is robust exactly there.
The model keeps two normalised colour histograms, H_O of the target box and
H_B of a ring around it; a pixel of colour bin b is the target with
probability H_O(b) / (H_O(b) + H_B(b)). The response at a position is that
probability averaged over a target-sized window (an integral image).

Here it complements learned features trained on little data, whose filter
drifts to background texture when a small target turns or blurs (a skier
against the sky, a cyclist's helmet in front of trees).
"""
from __future__ import annotations

import cv2
import numpy as np

BITS = 5  # 32 bins per channel, as in Staple


def colour_bins(img: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 -> HxW int bin index (BITS bits per channel)."""
    q = (img >> (8 - BITS)).astype(np.int32)
    return (q[..., 0] << (2 * BITS)) | (q[..., 1] << BITS) | q[..., 2]


def _histogram(bins: np.ndarray, mask: np.ndarray) -> np.ndarray:
    h = np.bincount(bins[mask], minlength=1 << (3 * BITS)).astype(np.float64)
    return h / max(h.sum(), 1.0)


class ColourModel:
    """``stride``: histograms and likelihoods use every stride-th pixel in both directions (a
    colour distribution and a target-sized window mean need far fewer pixels than a frame has;
    stride 2 quarters the work). 1 looks at every pixel."""

    def __init__(self, lr: float = 0.04, inner: float = 0.1, stride: int = 1):
        self.lr, self.inner, self.stride = lr, inner, max(1, int(stride))
        self.fg = self.bg = None

    def _masks(self, shape, center, size):
        """Boolean masks of the target box (shrunk by ``inner`` of its mean side) and of the ring
        between the box and the box grown by the mean side, clipped to the image."""
        h, w = shape
        cx, cy = center
        tw, th = float(size[0]), float(size[1])
        avg = (tw + th) / 2
        yy, xx = np.ogrid[:h, :w]

        def box(bw, bh):
            return (np.abs(xx - cx) <= bw / 2) & (np.abs(yy - cy) <= bh / 2)

        fg = box(max(1.0, tw - 2 * self.inner * avg), max(1.0, th - 2 * self.inner * avg))
        bg = box(tw + avg, th + avg) & ~box(tw, th)
        return fg, bg

    def update(self, img: np.ndarray, center, size) -> None:
        """Learn from the target at ``center`` (x, y) with ``size`` (w, h); the first call initialises."""
        # Work on the neighbourhood only: the masks never reach beyond the grown box.
        ext = np.asarray(size, float) + (size[0] + size[1]) / 2
        x0 = int(max(0, np.floor(center[0] - ext[0] / 2 - 1)))
        y0 = int(max(0, np.floor(center[1] - ext[1] / 2 - 1)))
        x1 = int(min(img.shape[1], np.ceil(center[0] + ext[0] / 2 + 2)))
        y1 = int(min(img.shape[0], np.ceil(center[1] + ext[1] / 2 + 2)))
        if x1 <= x0 or y1 <= y0:
            return
        k = self.stride
        patch = img[y0:y1:k, x0:x1:k]
        fg_mask, bg_mask = self._masks(patch.shape[:2], ((center[0] - x0) / k, (center[1] - y0) / k),
                                       np.asarray(size, float) / k)
        bins = colour_bins(patch)
        fg, bg = _histogram(bins, fg_mask), _histogram(bins, bg_mask)
        if self.fg is None:
            self.fg, self.bg = fg, bg
        else:
            self.fg = (1 - self.lr) * self.fg + self.lr * fg
            self.bg = (1 - self.lr) * self.bg + self.lr * bg

    def likelihood(self, img: np.ndarray) -> np.ndarray:
        """HxW float32: per pixel, the probability that its colour belongs to the target."""
        p = self.fg / (self.fg + self.bg + 1e-9)
        return p.astype(np.float32)[colour_bins(img)]

    def response(self, crop: np.ndarray, window: tuple[int, int], centres: np.ndarray) -> np.ndarray:
        """Mean likelihood in a ``window`` = (w, h) px box centred at every (row, col) of
        ``centres`` (crop pixels; shape (..., 2)); windows are clipped to the crop."""
        k = self.stride
        lik = self.likelihood(crop[::k, ::k])
        ii = cv2.integral(lik, sdepth=cv2.CV_64F)
        h, w = lik.shape
        r, c = centres[..., 0] / k, centres[..., 1] / k  # pixel p of the strided crop is crop pixel k·p
        hw, hh = window[0] / 2 / k, window[1] / 2 / k
        x0 = np.clip(np.round(c - hw), 0, w).astype(int)
        x1 = np.clip(np.round(c + hw), 0, w).astype(int)
        y0 = np.clip(np.round(r - hh), 0, h).astype(int)
        y1 = np.clip(np.round(r + hh), 0, h).astype(int)
        s = ii[y1, x1] - ii[y0, x1] - ii[y1, x0] + ii[y0, x0]
        area = np.maximum((x1 - x0) * (y1 - y0), 1)
        return (s / area).astype(np.float32)
