"""Colour model: bin indices, target/ring histograms, likelihoods and window means against hand counts."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers.synthetic import TINY
from tracker import crops
from tracker.colour_model import BITS, ColourModel, colour_bins
from tracker.dimp import DiMPTracker
from tracker.model import SiamNet

RED, BLUE, GREEN = (0, 0, 255), (255, 0, 0), (0, 255, 0)  # BGR


def _scene(h=120, w=160, square=(60, 40, 20, 30)):
    """Blue image with a red w x h square whose top-left is (x, y)."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = BLUE
    x, y, sw, sh = square
    img[y:y + sh, x:x + sw] = RED
    return img


def test_colour_bins_pack_the_top_bits_of_each_channel():
    px = np.array([[[255, 0, 8], [7, 128, 255]]], np.uint8)
    s = 8 - BITS
    want = [(255 >> s << 2 * BITS) | (0 << BITS) | (8 >> s), (7 >> s << 2 * BITS) | (128 >> s << BITS) | (255 >> s)]
    assert colour_bins(px).ravel().tolist() == want


def test_target_colour_is_likely_and_ring_colour_is_not():
    img = _scene()
    m = ColourModel()
    m.update(img, center=(60 + 9.5, 40 + 14.5), size=(20, 30))
    lik = m.likelihood(img)
    assert lik[50, 70] == pytest.approx(1.0, abs=1e-6)  # red: only in the target box
    assert lik[5, 5] == pytest.approx(0.0, abs=1e-6)  # blue: only in the ring
    green = np.zeros((1, 1, 3), np.uint8) + np.uint8(GREEN)
    assert m.likelihood(green)[0, 0] == 0.0  # never seen: not evidence for the target


def test_response_is_the_red_fraction_of_each_window():
    img = _scene()
    m = ColourModel()
    m.update(img, center=(69.5, 54.5), size=(20, 30))
    # windows of 20 x 30 px: on the square, half over it (shifted 10 px in x), and off it
    centres = np.array([[55.0, 70.0], [55.0, 80.0], [55.0, 120.0]])  # (row, col)
    got = m.response(img, (20, 30), centres)
    assert got[0] == pytest.approx(1.0, abs=1e-6)
    assert got[1] == pytest.approx(0.5, abs=1e-6)
    assert got[2] == pytest.approx(0.0, abs=1e-6)
    # a window half outside the image averages over the part inside
    edge = m.response(img, (20, 30), np.array([[0.0, 70.0]]))
    assert edge[0] == pytest.approx(0.0, abs=1e-6)


def test_update_blends_histograms_at_the_learning_rate():
    m = ColourModel(lr=0.25)
    m.update(_scene(), center=(69.5, 54.5), size=(20, 30))
    green_target = _scene()
    green_target[40:70, 60:80] = GREEN
    m.update(green_target, center=(69.5, 54.5), size=(20, 30))
    red, green = [colour_bins(np.uint8(c)[None, None])[0, 0] for c in (RED, GREEN)]
    assert m.fg[red] == pytest.approx(0.75) and m.fg[green] == pytest.approx(0.25)
    assert m.fg.sum() == pytest.approx(1.0) and m.bg.sum() == pytest.approx(1.0)


def test_dimp_colour_response_peaks_on_the_cell_of_the_target():
    """The tracker's colour map lies on its response grid: a red target moved by a known
    offset inside the search crop lights the response cell at that offset."""
    torch.manual_seed(0)
    trk = DiMPTracker(SiamNet(TINY).eval(), colour_weight=0.45)
    frame = np.zeros((300, 400, 3), np.uint8)
    frame[:] = BLUE
    frame[135:165, 185:215] = RED  # 30 x 30 target centred at (199.5, 149.5)
    trk.init(frame, (185, 135, 30, 30))
    moved = np.zeros_like(frame)
    moved[:] = BLUE
    dx, dy = 24, -16  # image px
    moved[135 + dy:165 + dy, 185 + dx:215 + dx] = RED
    # the crop update() cuts, at the old centre
    f = trk._new_frame(moved, crops.mean_colour(moved), trk.x_extent * trk.scales)
    f.patches = crops.scale_crops(moved, trk.center, f.extents, trk.params.search_size)
    n = trk.resp_size
    resp = trk._colour_response(f, n)[0].numpy()
    r, c = np.unravel_index(int(np.argmax(resp)), resp.shape)
    k = trk.params.search_size / trk.x_extent  # crop px per image px
    want = (np.array([dy, dx]) * k / trk.stride + (n - 1) / 2)
    assert abs(r - want[0]) <= 0.5 + 1e-9 and abs(c - want[1]) <= 0.5 + 1e-9, (r, c, want)
    assert resp[r, c] > 0.8 and resp[0, 0] < 0.05  # within half a cell of the target: mostly red


def test_strided_model_agrees_with_every_pixel():
    """stride 2 (the tracker's default) against stride 1, the reference: the same target
    likelihood where the colours are, window means within a few percent on a noisy scene."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    img[40:70, 60:80] = np.clip(np.int16(RED) + rng.integers(-20, 20, (30, 20, 3)), 0, 255)
    full, strided = ColourModel(stride=1), ColourModel(stride=2)
    for m in (full, strided):
        m.update(img, center=(69.5, 54.5), size=(20, 30))
    centres = np.stack(np.meshgrid(np.arange(10, 120, 8.0), np.arange(10, 160, 8.0), indexing="ij"), -1)
    a = full.response(img, (20, 30), centres)
    b = strided.response(img, (20, 30), centres)
    assert np.abs(a - b).max() < 0.1 and np.abs(a - b).mean() < 0.02
    assert np.unravel_index(np.argmax(a), a.shape) == np.unravel_index(np.argmax(b), b.shape)


def _response_reference(model, crop, window, centres):
    """Window means from an integral image of the whole (strided) crop's likelihood."""
    import cv2
    k = model.stride
    lik = model.likelihood(crop[::k, ::k])
    ii = cv2.integral(lik, sdepth=cv2.CV_64F)
    h, w = lik.shape
    r, c = centres[..., 0] / k, centres[..., 1] / k
    hw, hh = window[0] / 2 / k, window[1] / 2 / k
    x0, x1 = (np.clip(np.round(c + d), 0, w).astype(int) for d in (-hw, hw))
    y0, y1 = (np.clip(np.round(r + d), 0, h).astype(int) for d in (-hh, hh))
    s = ii[y1, x1] - ii[y0, x1] - ii[y1, x0] + ii[y0, x0]
    return (s / np.maximum((x1 - x0) * (y1 - y0), 1)).astype(np.float32)


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_response_over_the_covered_region_equals_the_whole_crop(stride):
    """The likelihood is computed only where some window reaches; the means are those of the
    whole crop's integral image (windows inside, and clipped at every edge)."""
    rng = np.random.default_rng(stride)
    crop = rng.integers(0, 255, (101, 87, 3), dtype=np.uint8)
    crop[30:60, 20:50] = RED
    m = ColourModel(stride=stride)
    m.update(crop, center=(34.5, 44.5), size=(30, 30))
    inner = np.stack(np.meshgrid(np.arange(40, 62, 4.0), np.arange(30, 58, 4.0), indexing="ij"), -1)
    edges = np.array([[[0.0, 0.0], [100.0, 86.0], [50.0, 3.0], [97.0, 40.0]]])
    for centres, window in ((inner, (12, 16)), (edges, (25, 31)), (inner, (200, 200))):
        got = m.response(crop, window, centres)
        np.testing.assert_allclose(got, _response_reference(m, crop, window, centres), atol=1e-6)


def _histograms_reference(img, center, size, inner=0.1):
    """Target and ring histograms from boolean masks over the whole image."""
    h, w = img.shape[:2]
    cx, cy = center
    tw, th = size
    avg = (tw + th) / 2
    yy, xx = np.ogrid[:h, :w]

    def box(bw, bh):
        return (np.abs(xx - cx) <= bw / 2) & (np.abs(yy - cy) <= bh / 2)

    fg = box(max(1.0, tw - 2 * inner * avg), max(1.0, th - 2 * inner * avg))
    bg = box(tw + avg, th + avg) & ~box(tw, th)
    bins = colour_bins(img)
    out = []
    for mask in (fg, bg):
        c = np.bincount(bins[mask], minlength=1 << (3 * BITS)).astype(np.float64)
        out.append(c / max(c.sum(), 1.0))
    return out


def test_rectangle_histograms_equal_boolean_masks():
    """Counting by slices (the ring as grown box minus box) gives the masks' histograms exactly,
    with fractional centres and boxes clipped at every image edge."""
    rng = np.random.default_rng(7)
    img = rng.integers(0, 255, (90, 130, 3), dtype=np.uint8)
    for center, size in (((64.3, 45.7), (21.0, 33.5)), ((3.5, 2.0), (30.0, 18.0)),
                         ((127.2, 88.9), (40.0, 25.0)), ((65.0, 45.0), (150.0, 120.0))):
        m = ColourModel(lr=1.0)
        m.update(img, center, size)
        fg, bg = _histograms_reference(img, center, size)
        np.testing.assert_array_equal(m.fg, fg)
        np.testing.assert_array_equal(m.bg, bg)
