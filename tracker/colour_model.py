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
    """HxWx3 uint8 -> HxW uint16 bin index (BITS bits per channel). In place on one uint16 array:
    half the time of int32 arithmetic with temporaries."""
    q = img >> (8 - BITS)
    b = q[..., 0].astype(np.uint16)
    b <<= BITS
    b |= q[..., 1]
    b <<= BITS
    b |= q[..., 2]
    return b


def _counts(bins: np.ndarray) -> np.ndarray:
    return np.bincount(bins.ravel(), minlength=1 << (3 * BITS))


def _normalised(counts: np.ndarray) -> np.ndarray:
    h = counts.astype(np.float64)
    return h / max(h.sum(), 1.0)


class ColourModel:
    """``stride``: histograms and likelihoods use every stride-th pixel in both directions (a
    colour distribution and a target-sized window mean need far fewer pixels than a frame has;
    stride 2 quarters the work). 1 looks at every pixel."""

    def __init__(self, lr: float = 0.04, inner: float = 0.1, stride: int = 1):
        self.lr, self.inner, self.stride = lr, inner, max(1, int(stride))
        self.fg = self.bg = None

    def _boxes(self, shape, center, size):
        """(rows, cols) slices of the target box shrunk by ``inner`` of its mean side, of the box
        itself and of the box grown by the mean side (the ring is grown minus box), clipped to
        the image. Pixel (y, x) is in a w x h box when |x - cx| <= w/2 and |y - cy| <= h/2."""
        h, w = shape
        cx, cy = center
        tw, th = float(size[0]), float(size[1])
        avg = (tw + th) / 2
        xs, ys = np.arange(w), np.arange(h)

        def span(v, c, half):  # the run of v with |v - c| <= half, as a slice
            idx = np.flatnonzero(np.abs(v - c) <= half)
            return slice(idx[0], idx[-1] + 1) if idx.size else slice(0, 0)

        def box(bw, bh):
            return span(ys, cy, bh / 2), span(xs, cx, bw / 2)

        return (box(max(1.0, tw - 2 * self.inner * avg), max(1.0, th - 2 * self.inner * avg)),
                box(tw, th), box(tw + avg, th + avg))

    def update(self, img: np.ndarray, center, size) -> None:
        """Learn from the target at ``center`` (x, y) with ``size`` (w, h); the first call initialises."""
        self.learn(self.neighbourhood(img, center, size))

    def neighbourhood(self, img: np.ndarray, center, size) -> tuple | None:
        """What ``learn`` reads of the frame: a copy of the pixels around the target (the masks
        never reach beyond the grown box), the target's centre and size in them; None when the
        target is off the frame. A copy, so the frame's buffer may be reused before ``learn`` runs."""
        ext = np.asarray(size, float) + (size[0] + size[1]) / 2
        x0 = int(max(0, np.floor(center[0] - ext[0] / 2 - 1)))
        y0 = int(max(0, np.floor(center[1] - ext[1] / 2 - 1)))
        x1 = int(min(img.shape[1], np.ceil(center[0] + ext[0] / 2 + 2)))
        y1 = int(min(img.shape[0], np.ceil(center[1] + ext[1] / 2 + 2)))
        if x1 <= x0 or y1 <= y0:
            return None
        k = self.stride
        patch = img[y0:y1:k, x0:x1:k].copy()
        return patch, ((center[0] - x0) / k, (center[1] - y0) / k), np.asarray(size, float) / k

    def learn(self, neighbourhood: tuple | None) -> None:
        """Blend in the histograms of a ``neighbourhood`` (its target box vs the ring around it)."""
        if neighbourhood is None:
            return
        patch, center, size = neighbourhood
        inner, box, grown = self._boxes(patch.shape[:2], center, size)
        bins = colour_bins(patch)
        # rectangles count by slicing; the ring is the grown box's counts minus the box's
        fg = _normalised(_counts(bins[inner]))
        bg = _normalised(_counts(bins[grown]) - _counts(bins[box]))
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
        h, w = -(-crop.shape[0] // k), -(-crop.shape[1] // k)  # the strided crop's size
        r, c = centres[..., 0] / k, centres[..., 1] / k  # pixel p of the strided crop is crop pixel k·p
        hw, hh = window[0] / 2 / k, window[1] / 2 / k
        x0 = np.clip(np.round(c - hw), 0, w).astype(int)
        x1 = np.clip(np.round(c + hw), 0, w).astype(int)
        y0 = np.clip(np.round(r - hh), 0, h).astype(int)
        y1 = np.clip(np.round(r + hh), 0, h).astype(int)
        # only the pixels some window covers (often half the crop): same sums, less work
        ya, yb, xa, xb = y0.min(), y1.max(), x0.min(), x1.max()
        if yb <= ya or xb <= xa:  # every window empty
            return np.zeros(centres.shape[:-1], np.float32)
        lik = self.likelihood(crop[ya * k: yb * k: k, xa * k: xb * k: k])
        ii = cv2.integral(lik, sdepth=cv2.CV_64F)
        y0, y1, x0, x1 = y0 - ya, y1 - ya, x0 - xa, x1 - xa
        s = ii[y1, x1] - ii[y0, x1] - ii[y1, x0] + ii[y0, x0]
        area = np.maximum((x1 - x0) * (y1 - y0), 1)
        return (s / area).astype(np.float32)
