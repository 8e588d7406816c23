"""The scale filter's fast stages against slow references: shared-region patches vs one crop and
resize per scale, the cartToPolar gradient histograms vs an arctan2 version, fDSST's
interpolated response (fewer scales cut) vs an explicit trigonometric sum and the full filter,
and patches cut from a grey region only (GreyFrame) vs the whole frame in grey, bit for bit."""
import cv2
import numpy as np
import pytest

from tests.test_scale_filter import _texture, _zoom
from tracker.scale_filter import BINS, CELL, GreyFrame, ScaleFilter, gradient_histograms, interpolate_periodic
from tracker.siamfc import SiamFCParams


def _histograms_reference(patches):
    """The plain version: exact arctan2 orientation, one loop over cells."""
    s, h, w = patches.shape
    gy, gx = np.gradient(patches.astype(np.float64), axis=(1, 2))
    mag, ang = np.hypot(gx, gy), np.mod(np.arctan2(gy, gx), np.pi) / np.pi * BINS
    ch, cw = h // CELL, w // CELL
    out = np.zeros((s, ch, cw, BINS + 1))
    for k in range(s):
        for i in range(ch):
            for j in range(cw):
                cell = (k, slice(i * CELL, (i + 1) * CELL), slice(j * CELL, (j + 1) * CELL))
                for m, a in zip(mag[cell].ravel(), ang[cell].ravel()):
                    lo = int(np.floor(a))
                    out[k, i, j, lo % BINS] += m * (1 - (a - lo))
                    out[k, i, j, (lo + 1) % BINS] += m * (a - lo)
                out[k, i, j, :BINS] /= np.sqrt((out[k, i, j, :BINS] ** 2).sum()) + 1e-3
                out[k, i, j, BINS] = patches[cell].mean() / 255 - 0.5
    return out.reshape(s, -1)


def test_fast_histograms_match_the_reference():
    patches = np.stack([cv2.resize(_texture(k), (16, 28), interpolation=cv2.INTER_AREA) for k in range(3)])
    got = gradient_histograms(patches)
    # cv2.cartToPolar's angle is ~0.3 degrees accurate: a 1/60 bin shifts weight between neighbours
    np.testing.assert_allclose(got, _histograms_reference(patches), atol=0.01)


def _each(grey, centre, size, factors, model):
    out = []
    for f in factors:
        pw, ph = max(2, int(round(size[0] * f))), max(2, int(round(size[1] * f)))
        p = cv2.getRectSubPix(grey, (pw, ph), (float(centre[0]), float(centre[1])))
        out.append(cv2.resize(p, model, interpolation=cv2.INTER_AREA if pw > model[0] else cv2.INTER_LINEAR))
    return np.stack(out)


def test_shared_patches_are_close_to_one_crop_per_scale():
    grey, centre, size = _texture(2), np.array([161.3, 118.6]), np.array([48.0, 36.0])
    sf = ScaleFilter(patches="shared")
    sf.init(grey, centre, size)
    got = sf._shared_patches(grey, centre, size, sf.factors)
    ref = _each(grey, centre, size, sf.factors, sf.model_size)
    assert got.shape == ref.shape
    # same content at every scale: mean error a few grey levels on a 0-255 texture (bilinear blur)
    err = np.abs(got - ref).mean(axis=(1, 2))
    assert err.max() < 6.0, err
    # and a wrong scale is far worse: the patches do encode the size
    assert np.abs(got[0] - ref[-1]).mean() > 2 * err.max()


@pytest.mark.parametrize("seed", [0, 3])
def test_shared_and_each_filters_estimate_the_same_zoom(seed):
    """The compressed patch cut against the full one over a run of zooms: estimates within one step."""
    grey, centre, size = _texture(seed), np.array([160.0, 120.0]), np.array([44.0, 40.0])
    filters = {m: ScaleFilter(patches=m) for m in ("shared", "each")}
    for sf in filters.values():
        sf.init(grey, centre, size)
    for steps in (-6, -3, -1, 1, 4, 7):
        img = _zoom(grey, centre, 1.02 ** steps)
        a, b = (filters[m].estimate(img, centre, size) for m in ("shared", "each"))
        assert abs(np.log(a / b) / np.log(1.02)) <= 1.0 + 1e-9, (steps, a, b)


def test_unknown_patch_mode_is_refused():
    with pytest.raises(ValueError, match="patches"):
        ScaleFilter(patches="pyramid")


def _trig_reference(spectrum, t):
    """The periodic band-limited signal with DFT ``spectrum`` at (fractional) sample positions t."""
    n = len(spectrum)
    ks = np.arange(n)
    ks = np.where(ks > n // 2, ks - n, ks)  # signed frequencies
    terms = spectrum[None, :] * np.exp(2j * np.pi * ks[None, :] * t[:, None] / n)
    if n % 2 == 0:  # the Nyquist term counts as a cosine
        terms[:, n // 2] = spectrum[n // 2] * np.cos(np.pi * n * t / n)
    return terms.sum(1).real / n


@pytest.mark.parametrize("n, factor", [(17, 2), (17, 3), (9, 4), (16, 2)])
def test_periodic_interpolation_equals_the_trigonometric_sum(n, factor):
    x = np.random.default_rng(n + factor).normal(size=n)
    got = interpolate_periodic(np.fft.fft(x), factor)
    np.testing.assert_allclose(got, _trig_reference(np.fft.fft(x), np.arange(n * factor) / factor), atol=1e-9)
    np.testing.assert_allclose(got[::factor], x, atol=1e-9)  # the samples themselves are kept
    np.testing.assert_allclose(interpolate_periodic(np.fft.fft(x), 1), x, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 3])
def test_fdsst_estimates_within_one_step_of_the_full_filter(seed):
    """17 scales cut and the response interpolated to 33 against all 33 cut, over a run of zooms."""
    grey, centre, size = _texture(seed), np.array([160.0, 120.0]), np.array([44.0, 40.0])
    full, fast = ScaleFilter(), ScaleFilter(sampled=17)
    assert len(fast.factors) == 17 and np.allclose(fast.out_factors, full.factors)
    for sf in (full, fast):
        sf.init(grey, centre, size)
    for steps in (-6, -3, -1, 0, 1, 4, 7):
        img = _zoom(grey, centre, 1.02 ** steps)
        a, b = full.estimate(img, centre, size), fast.estimate(img, centre, size)
        assert abs(np.log(a / b) / np.log(1.02)) <= 1.0 + 1e-9, (steps, a, b)
        assert abs(np.log(b) / np.log(1.02) - steps) <= 1.0 + 1e-9, (steps, b)  # and near the truth


def test_sampled_scales_must_fall_on_the_scale_grid():
    for bad in (2, 16, 34):
        with pytest.raises(ValueError, match="sampled scales"):
            ScaleFilter(sampled=bad)
        with pytest.raises(ValueError, match="sampled scales"):
            SiamFCParams.from_kwargs(dsst_sampled=bad)
    assert len(ScaleFilter(sampled=0).factors) == 33 and len(ScaleFilter(sampled=9).factors) == 9


@pytest.mark.parametrize("patches", ["each", "shared"])
def test_uint8_grey_gives_the_float_images_features(patches):
    """The tracker hands the scale filter a uint8 frame; its features must be those of the same
    frame as float32 to float rounding (getRectSubPix's 8U -> 32F arithmetic differs in the last
    bits), near the border too, where edge pixels are replicated."""
    grey = np.clip(_texture(5), 0, 255).round().astype(np.uint8)
    sf = ScaleFilter(patches=patches)
    for centre, size in ((np.array([161.3, 118.6]), np.array([48.0, 36.0])), (np.array([6.4, 230.2]), np.array([30.0, 40.0]))):
        sf.init(grey.astype(np.float32), centre, size)
        a = sf._features(grey.astype(np.float32), centre, size, sf.factors)
        b = sf._features(grey, centre, size, sf.factors)
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-4)  # cells of unit-norm histograms


def _colour_frame(seed, h=120, w=170):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)  # smooth, but every pixel its own


def test_grey_region_patches_are_the_whole_grey_frames_bits():
    """Inside, across the border and wholly outside the frame; the centre at float64 values that
    float32 rounds."""
    img = _colour_frame(0)
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    frame = GreyFrame(img)
    rng = np.random.default_rng(1)
    h, w = grey.shape
    for _ in range(400):
        c = (float(rng.uniform(-40, w + 40)), float(rng.uniform(-40, h + 40)))
        sizes = [(int(a), int(b)) for a, b in rng.integers(2, 150, (3, 2))]
        for got, (pw, ph) in zip(frame.patches(sizes, c), sizes):
            assert np.array_equal(got, cv2.getRectSubPix(grey, (pw, ph), c, patchType=cv2.CV_32F)), (c, pw, ph)


@pytest.mark.parametrize("patches, sampled", [("each", 0), ("shared", 17)])
def test_the_scale_filter_learns_the_same_from_a_grey_frame(patches, sampled):
    frames = [_colour_frame(s) for s in range(4)]
    a, b = ScaleFilter(patches=patches, sampled=sampled), ScaleFilter(patches=patches, sampled=sampled)
    c, size = np.array([30.0, 100.0]), np.array([50.0, 70.0])  # the patches reach past the frame
    a.init(cv2.cvtColor(frames[0], cv2.COLOR_BGR2GRAY), c, size)
    b.init(GreyFrame(frames[0]), c, size)
    for img in frames[1:]:
        grey, view = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), GreyFrame(img)
        s = a.estimate(grey, c, size)
        assert s == b.estimate(view, c, size)
        a.update(grey, c, size * s)
        b.update(view, c, size * s)
        assert np.array_equal(a.num, b.num) and np.array_equal(a.den, b.den)
