import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tracker.train.data.composite import CompositeSource, Stamp, paste
from tracker.train.data.crops import crop, warp

CACHE = Path(__file__).resolve().parents[1] / "data_cache"


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    d = tmp_path_factory.mktemp("assets")
    stamps = []
    for name, cat, col in (("red", "fruit/round", (0, 0, 220)), ("red2", "fruit/round", (0, 40, 200)),
                           ("blue", "tools", (220, 0, 0))):
        rgba = np.zeros((90, 70, 4), np.uint8)
        cv2.ellipse(rgba, (35, 45), (30, 40), 0, 0, 360, (*col, 255), -1)
        p = d / f"{name}.png"
        cv2.imwrite(str(p), rgba)
        stamps.append(Stamp(name, cat, p))
    bgs = []
    rng = np.random.default_rng(0)
    for k in range(2):
        p = d / f"bg{k}.jpg"
        cv2.imwrite(str(p), cv2.GaussianBlur(rng.integers(0, 255, (400, 500, 3), dtype=np.uint8), (0, 0), 3))
        bgs.append(p)
    return stamps, bgs


def _bbox(mask, thr=128):
    ys, xs = np.nonzero(mask >= thr)
    return np.array([xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()], float)


def test_target_mask_lands_where_the_box_says(assets):
    src = CompositeSource(*assets, p_distractor=1.0, p_occluder=0.5, p_motion_blur=0.3)
    rng = np.random.default_rng(1)
    for _ in range(25):
        pair = src.sample_pair(rng)
        for img, box, mask in ((pair.img_z, pair.box_z, pair.extra["mask_z"]),
                               (pair.img_x, pair.box_x, pair.extra["mask_x"])):
            assert img.shape[:2] == mask.shape
            np.testing.assert_allclose(box, _bbox(mask))
        # where the target is visible, the canvas shows the target stamp's colour
        colour = {"red": (0, 0, 220), "red2": (0, 40, 200), "blue": (220, 0, 0)}[pair.key.split(":")[1]]
        vis = pair.extra["visible_x"] > 230
        if vis.sum() > 50:
            med = np.median(pair.img_x[vis].astype(int), axis=0)
            assert np.abs(med - colour).max() < 40
        # through the search crop: the warped mask's box is the crop's box
        c = crop(pair.img_x, pair.box_x, 255, shift=(11.0, -7.0), scale=1.2)
        m = warp(pair.extra["mask_x"][..., None].repeat(3, 2), c.matrix, 255, pad=(0, 0, 0))[..., 0]
        # thresholding an upsampled edge moves each side by up to half a source pixel
        k = np.sqrt(abs(np.linalg.det(c.matrix[:, :2])))
        np.testing.assert_allclose(_bbox(m), c.box, atol=0.6 + k)


def test_pair_unpacks_and_keys_name_the_stamp(assets):
    src = CompositeSource(*assets)
    img_z, box_z, img_x, box_x = src.sample_pair(np.random.default_rng(3))
    assert img_z.dtype == np.uint8 and img_z.ndim == 3 and box_z.shape == (4,)
    assert src.sample_pair(np.random.default_rng(3)).key.startswith("stamp:")


def test_paste_alpha_composites_in_place():
    canvas = np.zeros((50, 50, 3), np.uint8)
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[2:8, 2:8] = (0, 0, 255, 255)  # premultiplied, opaque
    m = np.array([[1.0, 0, 20], [0, 1.0, 30]])
    a, (x0, y0) = paste(canvas, rgba, m)
    assert canvas[32:38, 22:28, 2].min() == 255 and canvas[:30].max() == 0
    assert a.max() == 255 and (x0, y0) == (20, 30)


@pytest.mark.skipif(not (CACHE / "index.json").is_file(), reason="data_cache not prepared (tools/prepare_data.py)")
def test_prepared_cache_has_real_assets():
    ix = json.loads((CACHE / "index.json").read_text())
    assert len(ix["stamps"]) >= 100 and len(ix["backgrounds"]) >= 50
    src = CompositeSource.from_index(CACHE, "train")
    val = CompositeSource.from_index(CACHE, "val")
    assert {s.name for s in src.stamps}.isdisjoint(s.name for s in val.stamps)
    pair = src.sample_pair(np.random.default_rng(0))
    assert pair.box_x[2] > 5
