"""Candidate peaks of the response: the bounding-box maximum filter against a whole-map dilation."""
import cv2
import numpy as np
import pytest

from tracker.dimp import local_maxima


def _reference(r, radius, threshold):
    r32 = np.asarray(r, np.float32)
    k = 2 * radius + 1
    is_max = cv2.dilate(r32, np.ones((k, k), np.uint8)) == r32
    return np.nonzero(is_max & (r >= threshold) & (r > 0))


@pytest.mark.parametrize("seed", range(6))
def test_local_maxima_match_a_whole_map_dilation(seed):
    rng = np.random.default_rng(seed)
    # a few bumps on a noisy floor, some flat-topped (ties), as upsampled responses look
    yy, xx = np.mgrid[:96, :96]
    r = 0.05 * rng.random((96, 96))
    for _ in range(rng.integers(1, 6)):
        cy, cx, s, h = *rng.uniform(0, 96, 2), rng.uniform(2, 9), rng.uniform(0.3, 1.0)
        r += h * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
    r = np.minimum(r, np.quantile(r, 0.999)).astype(np.float32)  # a plateau at the top
    r -= np.float32(0.2)  # some negative values
    for frac in (0.3, 0.5, 0.9):
        got = local_maxima(r, 6, frac * r.max())
        ref = _reference(r, 6, frac * r.max())
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_array_equal(got[1], ref[1])
        assert len(ref[0]) > 0


def test_no_point_above_the_threshold_gives_no_maxima():
    r = -np.ones((20, 20), np.float32)
    rows, cols = local_maxima(r, 3, 0.5)
    assert rows.size == 0 and cols.size == 0
