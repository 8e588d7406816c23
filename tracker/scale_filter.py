"""DSST-style scale estimation: a 1-D discriminative correlation filter over scales.

Danelljan et al., "Accurate Scale Estimation for Robust Visual Tracking" (BMVC 2014),
the scale stage CSRT and ECO also use. Around the target centre, patches at
``n_scales`` sizes (size · step^k) are resized to one small model size and
described by HOG-like gradient histograms; stacking them gives a (features ×
scales) sample. A filter learned in the Fourier domain along the scale axis
(closed form, running average of numerator and denominator) maps a new sample
to a response over scales whose peak is the size change.

It replaces the Siamese scale pyramid's three-way vote, which needs a penalty
on every non-central scale to stay stable and then lags behind real growth
(on the dev set's VOT bag the target grows ~1.3x in side, the pyramid's box shrinks).
It also lets the backbone run once per frame instead of three times.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

CELL = 4
BINS = 9


_CELL_INDEX: dict = {}


def _cell_index(s: int, h: int, w: int) -> np.ndarray:
    """Flat (patch, cell row, cell col) index of every pixel of the whole-cell area, times BINS."""
    key = (s, h, w)
    if key not in _CELL_INDEX:
        ch, cw = h // CELL, w // CELL
        cell = (np.arange(s)[:, None, None] * ch + (np.arange(ch * CELL) // CELL)[None, :, None]) * cw \
            + (np.arange(cw * CELL) // CELL)[None, None, :]
        _CELL_INDEX[key] = (cell * BINS).ravel()
    return _CELL_INDEX[key]


def gradient_histograms(patches: np.ndarray) -> np.ndarray:
    """(S, H, W) float grey patches -> (S, H/4 · W/4 · 10) features: 9 unsigned orientation
    bins of the gradient magnitude per 4x4 cell, each cell L2-normalised, plus its mean intensity.

    Orientation comes from cv2.cartToPolar (about 0.3 degrees accurate, a sixtieth of a bin):
    numpy's exact arctan2 alone cost 0.8 ms for 33 patches, more than everything else here."""
    s, h, w = patches.shape
    patches = np.asarray(patches, np.float32)
    gy, gx = np.gradient(patches, axis=(1, 2))
    ch, cw = h // CELL, w // CELL
    gx, gy = gx[:, : ch * CELL, : cw * CELL], gy[:, : ch * CELL, : cw * CELL]
    mag, ang = cv2.cartToPolar(np.ascontiguousarray(gx).reshape(-1, cw * CELL),
                               np.ascontiguousarray(gy).reshape(-1, cw * CELL))
    mag, ang = mag.ravel(), ang.ravel()
    pos = np.where(ang >= np.pi, ang - np.pi, ang) * np.float32(BINS / np.pi)  # unsigned, in bins
    lo = pos.astype(np.int64)  # pos >= 0: truncation is floor
    frac = pos - lo
    lo %= BINS
    cell = _cell_index(s, h, w)
    n = s * ch * cw * BINS
    # linear interpolation between the two nearest bins
    cells = (np.bincount(cell + lo, mag * (1 - frac), n) + np.bincount(cell + (lo + 1) % BINS, mag * frac, n))
    cells = cells.reshape(s, ch, cw, BINS).astype(np.float32)
    cells /= np.sqrt((cells ** 2).sum(-1, keepdims=True)) + 1e-3
    inten = patches[:, : ch * CELL, : cw * CELL].reshape(s, ch, CELL, cw, CELL).mean(axis=(2, 4))[..., None]
    return np.concatenate([cells, inten / 255.0 - 0.5], axis=-1).reshape(s, -1)


class GreyFrame:
    """A uint8 BGR (or grey) frame, seen in grey where the scale filter looks.

    The scale patches cover a few target sizes around the target; converting only that region
    (about 0.01 ms) instead of a whole 1280x720 frame (about 0.2 ms) gives the same patches to
    the bit: the region is clipped to the frame, so getRectSubPix replicates the frame's own
    border, and the centre is rounded to float32 first (what OpenCV does with it anyway), so
    shifting it by the region's integer origin is exact.
    """

    def __init__(self, img: np.ndarray):
        self.img = img

    def patches(self, sizes, center) -> list[np.ndarray]:
        """float32 patches of the (w, h) ``sizes`` around ``center``, as getRectSubPix cuts them
        from the whole frame in grey."""
        cx, cy = float(np.float32(center[0])), float(np.float32(center[1]))
        pw, ph = max(w for w, _ in sizes), max(h for _, h in sizes)
        hgt, wid = self.img.shape[:2]
        x0 = min(max(math.floor(cx - pw / 2) - 2, 0), wid - 1)  # the largest patch and its bilinear ring
        y0 = min(max(math.floor(cy - ph / 2) - 2, 0), hgt - 1)
        x1 = min(max(math.ceil(cx + pw / 2) + 3, x0 + 1), wid)
        y1 = min(max(math.ceil(cy + ph / 2) + 3, y0 + 1), hgt)
        region = self.img[y0:y1, x0:x1]
        grey = cv2.cvtColor(region, cv2.COLOR_BGR2GRAY) if region.ndim == 3 else region
        return [cv2.getRectSubPix(grey, (int(w), int(h)), (cx - x0, cy - y0), patchType=cv2.CV_32F) for w, h in sizes]


def cut_patches(image, sizes, center) -> list[np.ndarray]:
    """float32 patches of ``sizes`` around ``center`` from a GreyFrame or a grey image."""
    return (image if isinstance(image, GreyFrame) else GreyFrame(image)).patches(sizes, center)


PATCH_MODES = ("shared", "each")


class ScaleFilter:
    """``patches``: how the scale patches are cut. "each": every patch cropped from the frame and
    area-resized on its own (one crop and one resize per scale, ~2 ms for 33 on this CPU).
    "shared": the region of the largest patch is area-resized once to model resolution and every
    scale is a bilinear resample of that small image, all in one remap (~0.1 ms); bilinear
    resampling at zoom 0.73-1.37 blurs or aliases a little where a per-patch area resize would not."""

    def __init__(self, n_scales: int = 33, step: float = 1.02, model_area: int = 512, lr: float = 0.025,
                 reg: float = 1e-2, sigma_factor: float = 0.25, patches: str = "each", sampled: int = 0):
        if patches not in PATCH_MODES:
            raise ValueError(f"patches must be one of {', '.join(PATCH_MODES)}, got {patches!r}")
        check_sampled(n_scales, sampled)
        n = sampled or n_scales
        self.n, self.step, self.model_area, self.lr, self.reg = n, step, model_area, lr, reg
        self.patches = patches
        # fDSST (Danelljan et al., TPAMI 2017): patches are cut at only ``sampled`` scales, every
        # ``spacing``-th of the n_scales, and the response is interpolated to all n_scales.
        self.spacing = (n_scales - 1) // (n - 1)
        k = (np.arange(n) - (n - 1) // 2) * self.spacing  # sampled scale exponents, 0 in the middle
        self.factors = step ** k.astype(np.float64)  # the sampled ones
        self.out_factors = step ** (np.arange(n_scales) - (n_scales - 1) // 2).astype(np.float64)
        sigma = np.sqrt(n_scales) * sigma_factor  # in steps, whatever is sampled
        self.label_hat = np.fft.fft(np.exp(-0.5 * (k / sigma) ** 2))  # Gaussian over scales
        self.window = np.hanning(n + 2)[1:-1]  # no zero weights at the ends
        self.num = self.den = None
        self.model_size = None
        self._last = None  # (image, centre, size, features) of the latest sample

    def _features(self, grey: np.ndarray | GreyFrame, center, size, factors) -> np.ndarray:
        """(scales, features) gradient histograms of the patches at size · factors, unwindowed."""
        if self.patches == "shared":
            return gradient_histograms(self._shared_patches(grey, center, size, factors))
        mw, mh = self.model_size
        sizes = [(max(2, int(round(size[0] * f))), max(2, int(round(size[1] * f)))) for f in factors]
        patches = np.empty((len(factors), mh, mw), np.float32)
        for i, p in enumerate(cut_patches(grey, sizes, center)):
            interp = cv2.INTER_AREA if p.shape[1] > mw else cv2.INTER_LINEAR
            patches[i] = cv2.resize(p, (mw, mh), interpolation=interp)
        return gradient_histograms(patches)

    def _shared_patches(self, grey: np.ndarray | GreyFrame, center, size, factors) -> np.ndarray:
        """(S, mh, mw) patches at size · factors, resampled from one area-resized region."""
        mw, mh = self.model_size
        fmax = float(np.max(factors))
        sw, sh = int(np.ceil(mw * fmax)) + 2, int(np.ceil(mh * fmax)) + 2  # small image, model px
        rw = max(2, int(round(sw * size[0] / mw)))  # the same region in frame px
        rh = max(2, int(round(sh * size[1] / mh)))
        region = cut_patches(grey, [(rw, rh)], center)[0]
        interp = cv2.INTER_AREA if rw > sw else cv2.INTER_LINEAR
        small = cv2.resize(region, (sw, sh), interpolation=interp)
        # Patch pixel j of scale f sits at frame x = cx + (j + 1/2 - mw/2) · f · size/mw (as a
        # crop-and-resize puts it); frame x is small-image u = (x - cx) · sw/rw + sw/2 - 1/2.
        f = np.asarray(factors, np.float64)[:, None, None]
        j = np.arange(mw, dtype=np.float64)[None, None, :]
        i = np.arange(mh, dtype=np.float64)[None, :, None]
        u = (j + 0.5 - mw / 2) * f * size[0] / mw * sw / rw + sw / 2 - 0.5
        v = (i + 0.5 - mh / 2) * f * size[1] / mh * sh / rh + sh / 2 - 0.5
        s = len(factors)
        mx = np.broadcast_to(u, (s, mh, mw)).reshape(s * mh, mw).astype(np.float32)
        my = np.broadcast_to(v, (s, mh, mw)).reshape(s * mh, mw).astype(np.float32)
        out = cv2.remap(small, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return out.reshape(s, mh, mw)

    def _sample(self, grey: np.ndarray | GreyFrame, center, size) -> np.ndarray:
        """(features, scales) spectrum of the patches around ``center`` at size · factors."""
        return self._spectrum(self.features(grey, center, size))

    def _spectrum(self, feats: np.ndarray) -> np.ndarray:
        return np.fft.fft((feats * self.window[:, None]).T, axis=1)  # (d, S)

    def features(self, grey: np.ndarray | GreyFrame, center, size) -> np.ndarray:
        """(scales, features) gradient histograms of the patches around ``center`` at size · factors:
        all the filter reads of a frame (``learn`` takes them; they own their memory).

        The tracker samples twice per frame at one centre: to estimate (old size) and to learn
        (new size = old · factors[k]). The second sample's patches are then the first's shifted
        by k scales, so only the |k| patches past the end are cut and described again.
        """
        center, size = np.asarray(center, float), np.asarray(size, float)
        feats, last = None, self._last
        if last is not None and last[0] is grey and np.array_equal(last[1], center):
            ratio = size / last[2]
            k = int(np.argmin(np.abs(self.factors - ratio[0])))
            if np.allclose(ratio, self.factors[k], rtol=1e-9, atol=0):
                k -= (self.n - 1) // 2  # shift in scale steps
                feats = np.empty_like(last[3])
                lo, hi = max(0, -k), min(self.n, self.n - k)  # rows covered by the old sample
                feats[lo:hi] = last[3][lo + k: hi + k]
                fresh = np.r_[0:lo, hi:self.n]
                if fresh.size:
                    feats[fresh] = self._features(grey, center, size, self.factors[fresh])
        if feats is None:
            feats = self._features(grey, center, size, self.factors)
        self._last = (grey, center, size, feats)
        return feats

    def init(self, grey: np.ndarray | GreyFrame, center, size) -> None:
        w, h = float(size[0]), float(size[1])
        k = np.sqrt(self.model_area / max(w * h, 1e-6))
        # a model at least 2 cells on a side, in whole cells, with the target's aspect ratio
        self.model_size = (max(2 * CELL, int(round(w * k / CELL)) * CELL),
                           max(2 * CELL, int(round(h * k / CELL)) * CELL))
        self.num = self.den = None
        self._last = None
        self.update(grey, center, size)

    def update(self, grey: np.ndarray | GreyFrame, center, size) -> None:
        """Learn from the target at ``center`` with ``size`` (running average, rate lr)."""
        self.learn(self.features(grey, center, size))

    def learn(self, feats: np.ndarray) -> None:
        """Blend in a sample given as ``features``' output."""
        f = self._spectrum(feats)
        num = np.conj(self.label_hat)[None] * f
        den = (f * np.conj(f)).real.sum(0)
        if self.num is None:
            self.num, self.den = num, den
        else:
            self.num = (1 - self.lr) * self.num + self.lr * num
            self.den = (1 - self.lr) * self.den + self.lr * den

    def estimate(self, grey: np.ndarray | GreyFrame, center, size) -> float:
        """The size factor (one of ``factors``) at which the target at ``center`` now appears."""
        z = self._sample(grey, center, size)
        resp_hat = (np.conj(self.num) * z).sum(0) / (self.den + self.reg)
        resp = interpolate_periodic(resp_hat, self.spacing)[: len(self.out_factors)]
        return float(self.out_factors[int(np.argmax(resp))])


def check_sampled(n_scales: int, sampled: int) -> None:
    """``sampled`` scales must fall on every k-th of the n_scales, both ends included (0: all)."""
    if sampled and (sampled < 3 or sampled > n_scales or (n_scales - 1) % (sampled - 1)):
        raise ValueError(f"sampled scales must be 0 or a count k with {n_scales} - 1 a multiple of k - 1, "
                         f"got {sampled}")


def interpolate_periodic(spectrum: np.ndarray, factor: int) -> np.ndarray:
    """The periodic signal with DFT ``spectrum`` (length n) at ``factor`` times as many points
    (trigonometric interpolation: the spectrum zero-padded in the middle); point factor·i is sample i."""
    n = len(spectrum)
    if factor == 1:
        return np.fft.ifft(spectrum).real
    padded = np.zeros(n * factor, complex)
    half = (n + 1) // 2  # frequencies 0..half-1 and the negative ones
    padded[:half] = spectrum[:half]
    padded[n * factor - (n - half):] = spectrum[half:]
    if n % 2 == 0:  # split the Nyquist term between +/- so the result stays real
        padded[n // 2] = spectrum[n // 2] / 2
        padded[n * factor - n // 2] = spectrum[n // 2] / 2
    return np.fft.ifft(padded).real * factor
