"""DSST-style scale filter: gradient histograms by hand, recovery of a known zoom, and the trackers' use of it."""
import cv2
import numpy as np
import pytest
import torch

from tests.helpers.synthetic import TINY
from tracker.dimp import DiMPTracker
from tracker.model import SiamNet
from tracker.scale_filter import BINS, ScaleFilter, gradient_histograms
from tracker.siamfc import SiamFCTracker


def test_histograms_of_pure_ramps_by_hand():
    x = np.tile(np.arange(8, dtype=np.float32) * 3.0, (8, 1))  # intensity grows to the right: angle 0
    f = gradient_histograms(np.stack([x, x.T])).reshape(2, 2, 2, BINS + 1)
    # horizontal ramp: all of each cell's gradient in bin 0; normalised to ~1
    assert np.allclose(f[0, ..., 0], 1.0, atol=1e-3) and np.allclose(f[0, ..., 1:BINS], 0.0)
    # vertical ramp: angle pi/2 sits half-way between bins 4 and 5 -> 1/sqrt(2) each
    assert np.allclose(f[1, ..., 4], 2 ** -0.5, atol=1e-3) and np.allclose(f[1, ..., 5], 2 ** -0.5, atol=1e-3)
    assert np.allclose(f[1, ..., [0, 1, 2, 3, 6, 7, 8]], 0.0, atol=1e-6)
    # last channel: the cell's mean intensity, /255 - 0.5 (left cells of the horizontal ramp: mean of 0, 3, 6, 9)
    assert f[0, 0, 0, BINS] == pytest.approx(np.mean(np.arange(4) * 3.0) / 255 - 0.5, abs=1e-6)


def _texture(seed=0, size=(240, 320)):
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (size[0] // 6, size[1] // 6)).astype(np.float32)
    return cv2.GaussianBlur(cv2.resize(small, size[::-1], interpolation=cv2.INTER_CUBIC), (0, 0), 1.0)


def _zoom(img, centre, factor):
    m = np.array([[factor, 0, centre[0] * (1 - factor)], [0, factor, centre[1] * (1 - factor)]])
    return cv2.warpAffine(img, m, img.shape[::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


@pytest.mark.parametrize("patches", ["shared", "each"])
@pytest.mark.parametrize("steps", [-4, -2, 0, 3, 5])
def test_recovers_a_known_zoom(steps, patches):
    grey, centre, size = _texture(), np.array([160.0, 120.0]), np.array([48.0, 36.0])
    sf = ScaleFilter(patches=patches)
    sf.init(grey, centre, size)
    factor = 1.02 ** steps
    got = sf.estimate(_zoom(grey, centre, factor), centre, size)
    assert abs(np.log(got / factor) / np.log(1.02)) <= 1.0 + 1e-9, (got, factor)  # within one scale step


def test_dimp_sizes_by_the_scale_filter_on_one_crop_per_frame():
    torch.manual_seed(0)
    net = SiamNet(TINY).eval()
    calls = []
    embed = net.embed
    net.embed = lambda x: (calls.append(x.shape[0]), embed(x))[1]
    grey = _texture()
    frame0 = np.repeat(grey.astype(np.uint8)[..., None], 3, axis=2)
    box = (136, 102, 48, 36)
    trk = DiMPTracker(net)
    assert trk.params.scale_mode == "dsst"
    trk.init(frame0, box)
    calls.clear()
    centre = (136 + 23.5, 102 + 17.5)
    zoomed = np.repeat(_zoom(grey, centre, 1.02 ** 4).astype(np.uint8)[..., None], 3, axis=2)
    out = trk.update(zoomed)
    assert calls == [1]  # one search crop, not a pyramid of three
    assert out[2] / 48 == pytest.approx(1.02 ** 4, rel=0.025) and out[3] / out[2] == pytest.approx(36 / 48, rel=1e-6)
    with pytest.raises(ValueError, match="scale_mode"):  # refused when the parameters are made
        SiamFCTracker(net, scale_mode="cubic")


@pytest.mark.parametrize("steps", [-3, 0, 2, 40])
def test_learning_sample_reuses_the_estimate_patches_exactly(steps):
    """The second sample of a frame (new size, same centre) reuses the first one's patches
    shifted by the size change; it must equal a sample cut from scratch."""
    grey, centre, size = _texture(1), np.array([150.0, 110.0]), np.array([40.0, 30.0])
    sf = ScaleFilter(patches="each")  # shared patches come from a region that follows the size
    sf.init(grey, centre, size)
    sf._sample(grey, centre, size)
    new_size = size * 1.02 ** steps
    cut = []
    features = sf._features
    sf._features = lambda g, c, s, f: (cut.append(len(f)), features(g, c, s, f))[1]
    reused = sf._sample(grey, centre, new_size)
    assert sum(cut) == min(abs(steps), sf.n)  # only the patches past the old range were cut
    sf._last = None
    fresh = sf._sample(grey, centre, new_size)
    np.testing.assert_allclose(reused, fresh, rtol=1e-5, atol=1e-5)
    # another image (or centre) is never served from the cache
    cut.clear()
    sf._sample(grey.copy(), centre, new_size * 1.02)
    assert cut == [sf.n]
