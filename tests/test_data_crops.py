import math

import cv2
import numpy as np
import pytest

from tracker.train.data.crops import context_size, crop, crop_matrix, decode_factor, read_for_box


def _centroid(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    w = mask[ys, xs].astype(np.float64)
    return float((ys * w).sum() / w.sum()), float((xs * w).sum() / w.sum())


def _scene(box):
    """Black image, white target box, a 5 px marker disc at the box centre."""
    img = np.zeros((480, 640, 3), np.uint8)
    x, y, w, h = box
    img[y:y + h, x:x + w, 1] = 255
    cx, cy = x + (w - 1) / 2, y + (h - 1) / 2
    cv2.circle(img, (int(round(cx * 16)), int(round(cy * 16))), 5 * 16, (0, 0, 255), -1, cv2.LINE_AA, shift=4)
    return img


@pytest.mark.parametrize("size", [127, 255])
def test_box_lands_at_crop_centre_with_siamfc_size(size):
    box = (200, 150, 61, 41)
    c = crop(_scene(box), box, size)
    s = 127 / context_size(61, 41)  # same scale for exemplar and search crops
    cx = (size - 1) / 2
    # box in crop coordinates: centred, scaled by s
    assert c.box[2] == pytest.approx(61 * s) and c.box[3] == pytest.approx(41 * s)
    assert c.box[0] + (c.box[2] - 1) / 2 == pytest.approx(cx)
    assert c.box[1] + (c.box[3] - 1) / 2 == pytest.approx(cx)
    assert c.offset_yx == (0.0, 0.0)
    # the drawn target occupies exactly that box
    ys, xs = np.nonzero(c.image[..., 1] > 127)
    assert xs.min() == pytest.approx(c.box[0], abs=1) and xs.max() + 1 == pytest.approx(c.box[0] + c.box[2], abs=1)
    assert ys.min() == pytest.approx(c.box[1], abs=1) and ys.max() + 1 == pytest.approx(c.box[1] + c.box[3], abs=1)
    my, mx = _centroid(c.image[..., 2])
    assert (my, mx) == (pytest.approx(cx, abs=0.3), pytest.approx(cx, abs=0.3))


def test_search_crop_spans_sz_times_255_over_127():
    box = (300, 200, 40, 40)
    m = crop_matrix(box, 255)
    sz = context_size(40, 40)
    # 255 crop pixels cover sz*255/127 image pixels
    assert 255 / m[0, 0] == pytest.approx(sz * 255 / 127)


@pytest.mark.parametrize("jit", [
    dict(shift=(23.0, -17.0)),
    dict(shift=(-40.0, 31.5), scale=1.3, aspect=0.8),
    dict(shift=(10.0, 12.0), scale=0.75, aspect=1.2, angle=25.0),
])
def test_jitter_moves_marker_by_reported_offset(jit):
    box = (250, 180, 70, 50)
    c = crop(_scene(box), box, 255, **jit)
    my, mx = _centroid(c.image[..., 2])
    dy, dx = c.offset_yx
    assert (dy, dx) == (jit["shift"][1], jit["shift"][0])
    assert my - 127 == pytest.approx(dy, abs=0.35)
    assert mx - 127 == pytest.approx(dx, abs=0.35)
    # box centre agrees with the offset
    assert c.box[0] + (c.box[2] - 1) / 2 - 127 == pytest.approx(dx)
    assert c.box[1] + (c.box[3] - 1) / 2 - 127 == pytest.approx(dy)
    if not jit.get("angle"):
        s = 127 / context_size(70, 50) * jit.get("scale", 1.0)
        a = math.sqrt(jit.get("aspect", 1.0))
        assert c.box[2] == pytest.approx(70 * s * a) and c.box[3] == pytest.approx(50 * s / a)


def test_mean_colour_padding():
    img = np.full((100, 100, 3), (10, 20, 30), np.uint8)
    c = crop(img, (40, 40, 20, 20), 255)  # crop much larger than the image
    assert tuple(c.image[0, 0]) == (10, 20, 30)


def test_reduced_decode_keeps_geometry(tmp_path):
    box = (200, 100, 300, 260)  # big target -> crop is a strong downscale
    img = _scene(box)
    p = tmp_path / "f.png"
    cv2.imwrite(str(p), img)
    assert decode_factor(box, 1.4) >= 2
    small, b = read_for_box(p, box, 1.4)
    f = img.shape[1] / small.shape[1]
    assert f >= 2 and np.allclose(b, np.array(box) / f)
    full = crop(img, box, 255).image
    red = crop(small, b, 255).image
    # same picture up to resampling
    my0, mx0 = _centroid(full[..., 2])
    my1, mx1 = _centroid(red[..., 2])
    assert abs(my0 - my1) < 0.6 and abs(mx0 - mx1) < 0.6
