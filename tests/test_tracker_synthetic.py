"""Both trackers follow a textured patch over a textured background, with a model trained here.

The tiny model learns from synthetic pairs (other seeds than the test
sequences) for ~60 steps; the boxes come from the trackers alone.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from test_tracker_kit import TINY, iou, make_patch, synthetic_sequence, texture, tiny_spec, train_tiny
from tracker.api import create_tracker
from tracker.zoo import save_model

SEQUENCES = (101, 102)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convs: one thread is fastest and the host may be busy
    try:
        net = train_tiny(steps=60, batch=8, seed=0)
    finally:
        torch.set_num_threads(threads)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_model(path, net, tiny_spec(), {"training_data": "synthetic pairs, 60 steps"})
    return path


def run_sequence(tracker, frames, init, rgb=False):
    conv = (lambda f: f[:, :, ::-1].copy()) if rgb else (lambda f: f)
    tracker.init(conv(frames[0]), init)
    return np.array([init] + [tracker.update(conv(f)) for f in frames[1:]], dtype=np.float64)


@pytest.mark.parametrize("name, params", [("siamfc", {}), ("dimp", {}), ("dimp", {"colour_weight": 0.0}),
                                          ("siamfc", {"template_lr": 0.05})])
def test_tracks_synthetic_sequences(trained, name, params):
    for seed in SEQUENCES[: 1 if params else None]:
        frames, gt = synthetic_sequence(seed, n=60)
        t = create_tracker(name, model=str(trained), threads=1, **params)
        boxes = run_sequence(t, frames, gt[0])
        miou = float(iou(boxes, gt).mean())
        assert miou > 0.7, f"{name} {params} on sequence {seed}: mean IoU {miou:.3f}"


def test_deterministic_and_rgb_option(trained):
    import tracker  # the package-level entry point users import
    assert tracker.CHANNELS == "bgr"
    frames, gt = synthetic_sequence(103, n=20)
    a = run_sequence(create_tracker("dimp", model=str(trained), threads=1), frames, gt[0])
    b = run_sequence(create_tracker("dimp", model=str(trained), threads=1), frames, gt[0])
    c = run_sequence(tracker.create_tracker("dimp", model=str(trained), threads=1, rgb=True), frames, gt[0], rgb=True)
    assert np.array_equal(a, b)
    assert np.array_equal(a, c)


def test_opencv_style_track_and_info(trained):
    frames, gt = synthetic_sequence(104, n=4)
    t = create_tracker("siamfc", model=str(trained), threads=1)
    t.init(frames[0], gt[0])
    ok, box = t.track(frames[1])
    assert isinstance(ok, bool) and len(box) == 4 and all(isinstance(v, float) for v in box)
    assert t.info["backbone"] == TINY and t.info["budget"] == 1.0 and t.info["kernel"] == "torch"


def test_bad_calls(trained):
    t = create_tracker("siamfc", model=str(trained), threads=1)
    frames, gt = synthetic_sequence(104, n=2)
    with pytest.raises(RuntimeError, match="init"):
        t.update(frames[0])
    with pytest.raises(ValueError, match="positive size"):
        t.init(frames[0], (1, 2, 0, 5))
    with pytest.raises(ValueError, match="unknown DiMPParams parameter"):
        create_tracker("dimp", model=str(trained), windw_influence=0.3)
    with pytest.raises(ValueError, match="unknown tracker"):
        create_tracker("kcf", model=str(trained))
    with pytest.raises(ValueError, match="budget"):
        create_tracker("dimp", budget=0.0)


def test_dimp_holds_the_box_when_the_siamese_peak_collapses(trained):
    frames, gt = synthetic_sequence(101, n=4)
    t = create_tracker("dimp", model=str(trained), threads=1, update_every=1000, lost_ratio=0.4)
    t.init(frames[0], gt[0])
    ok, held = t.track(frames[1])
    assert ok and t.peak_level > 0
    t.zf = torch.zeros_like(t.zf)  # the exemplar no longer matches anything: a flat response
    ok, box = t.track(frames[3])  # the patch has moved
    assert not ok and t.searching
    assert np.allclose(box, held)


def occlusion_clip(seed: int = 5):
    """A target that moves right, vanishes for 10 frames and comes back 80 px further on:
    outside the usual search area (about ±40 px here), inside the wide one (about ±120 px)."""
    rng = np.random.default_rng(seed)
    patch = make_patch(rng, 32, 40)
    bg = ((texture(rng, 240, 360, 40).astype(np.int16) + texture(rng, 240, 360, 12)) // 2).astype(np.uint8)
    frames, boxes = [], []
    for i in range(40):
        img = bg.copy()
        x = 60 + 2 * i + (80 if i >= 20 else 0)
        if not 10 <= i < 20:
            img[100:132, x: x + 40] = patch
        frames.append(img)
        boxes.append((x, 100, 40, 32))
    return frames, np.array(boxes, dtype=np.float64)


@pytest.mark.parametrize("name", ["siamfc", "dimp"])
def test_redetects_the_target_after_a_full_occlusion(name):
    # The shipped FP model: the tiny test model's response barely drops when its target goes.
    frames, gt = occlusion_clip()

    states = []

    def run(**params):
        t = create_tracker(name, budget=1.0, threads=1, **params)
        t.init(frames[0], gt[0])
        out = []
        for f in frames[1:]:
            out.append(t.track(f))
            states.append((t.score, t.lost))
        return np.array([True] + [ok for ok, _ in out]), iou(np.array([gt[0]] + [b for _, b in out]), gt)

    oks, ious = run(lost_ratio=0.4)
    assert ious[1:10].min() > 0.6
    assert not oks[10:20].any(), "while the target is gone, track() should say so"
    score, lost = (np.array(v) for v in zip(*states))  # index i: frame i + 1
    assert ((score >= 0) & (score <= 1)).all()
    assert not lost[:8].any() and lost[10:19].any(), "the lost flag marks the occlusion"
    assert score[10:19][lost[10:19]].max() == 0.0 and score[:8].min() > 0.0
    assert ious[21:].min() > 0.6, f"not re-detected: IoU {ious[20:].round(2)}"
    _, plain = run(lost_ratio=0.0)  # without re-detection the target is out of reach
    assert plain[25:].max() < 0.3
