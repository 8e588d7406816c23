"""Several targets in one run (tracker/multi.py, track --init repeated / --init-file / --select-many).

The reference for a batched run is each target tracked alone by its own tracker: the backbone's
features of a crop do not depend on the other crops in its batch, so the boxes, scores and lost
flags must be equal, not just close.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch

from backbones import Spec
import test_track_window as win_kit
from test_track_window import display  # noqa: F401  (fixture: an Xvfb screen)
from test_tracker_kit import TINY, make_patch, synthetic_sequence, texture, write_video
from tests.helpers.threads import one_thread  # noqa: F401  (autouse fixture)
from tests.helpers.track_cli import run_track as track
from tracker import api, cli, crops, video
from tracker.api import create_tracker
from tracker.model import SiamNet
from tracker.multi import MultiTracker, track_many
from tracker.zoo import save_model

GONE = (5, 10)  # frames in which target 0 is hidden


def three_targets(n: int = 16):
    """Three textured patches moving over a textured background; target 0 vanishes for GONE frames
    and comes back 30 px to the right, so it is lost (re-detection crops) while the others are tracked."""
    rng = np.random.default_rng(5)
    bg = ((texture(rng, 240, 360, 40).astype(np.int16) + texture(rng, 240, 360, 12)) // 2).astype(np.uint8)
    patches = [make_patch(rng, 32, 40) for _ in range(3)]
    frames, boxes = [], []
    for i in range(n):
        img, row = bg.copy(), []
        for k, (x0, y0, vx, vy) in enumerate([(40, 30, 3, 1), (200, 150, -2, -1), (250, 40, -1, 2)]):
            x, y = x0 + vx * i + (30 if k == 0 and i >= GONE[1] else 0), y0 + vy * i
            if not (k == 0 and GONE[0] <= i < GONE[1]):
                img[y:y + 32, x:x + 40] = patches[k]
            row.append((x, y, 40, 32))
        frames.append(img)
        boxes.append(row)
    return frames, np.array(boxes, dtype=np.float64)


def run_alone(tracker, frames, box):
    """(boxes, scores, lost) of one tracker over frames[1:]."""
    tracker.init(frames[0], box)
    out = [(tracker.update(f), tracker.score, tracker.lost) for f in frames[1:]]
    return tuple(np.array(v) for v in zip(*out))


def run_together(mt, frames, boxes):
    mt.init(frames[0], boxes)
    out = [(mt.update(f), mt.scores, mt.lost) for f in frames[1:]]
    return tuple(np.array(v) for v in zip(*out))  # (T, N, 4), (T, N), (T, N)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """Random weights: equality and I/O are under test here, not accuracy."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("multi") / "tiny.pt"
    save_model(path, SiamNet(TINY).eval(), Spec.uniform(TINY, "fp"), {"note": "random weights"})
    return path


# -- the batched run equals each target alone ---------------------------------------------------

@pytest.mark.parametrize("name, params", [("dimp", {}), ("siamfc", {"lost_ratio": 0.4})])
def test_batched_targets_equal_each_target_alone_on_the_packed_model(name, params):
    """The shipped B2NN at budget 0.3 on the packed kernels; target 0 is lost and re-detected while
    targets 1 and 2 are tracked, so a frame's crops form two batches of different sizes."""
    frames, gt = three_targets()
    mt = MultiTracker(create_tracker(name, budget=0.3, threads=1, **params))
    boxes, scores, lost = run_together(mt, frames, gt[0])
    assert lost[:, 0].any() and not lost[:, 1:].any(), "the clip should have one target lost beside tracked ones"
    assert not lost[-1].any(), "target 0 should be found again"
    for k in range(3):
        alone = run_alone(create_tracker(name, budget=0.3, threads=1, **params), frames, gt[0, k])
        assert np.array_equal(alone[0], boxes[:, k]), f"target {k}: boxes differ from the target alone"
        assert np.array_equal(alone[1], scores[:, k]) and np.array_equal(alone[2], lost[:, k])


def test_packed_backbone_batch_equals_one_crop_at_a_time():
    """What the equality rests on: the exported backbone's features of a crop in a batch of four are those
    of the crop alone, bit for bit."""
    t = create_tracker("dimp", budget=0.3, threads=1)
    if t.info["kernel"] != "packed":
        pytest.skip("the packed kernel library is not built here")
    crops_ = np.random.default_rng(0).integers(0, 256, (4, 255, 255, 3), dtype=np.uint8)
    with torch.inference_mode():
        batch = t.model.embed(crops.to_tensor_batch(crops_))
        for i in range(4):
            assert torch.equal(t.model.embed(crops.to_tensor_batch(crops_[i:i + 1]))[0], batch[i])


@pytest.mark.parametrize("name", ["dimp", "siamfc"])
def test_one_target_equals_the_single_tracker(tiny_model, name):
    frames, gt = synthetic_sequence(21, n=12)
    alone = run_alone(create_tracker(name, model=str(tiny_model), threads=1), frames, gt[0])
    boxes, scores, lost = run_together(MultiTracker(create_tracker(name, model=str(tiny_model), threads=1)),
                                       frames, [gt[0]])
    assert boxes.shape == (len(frames) - 1, 1, 4)
    assert np.array_equal(alone[0], boxes[:, 0]) and np.array_equal(alone[1], scores[:, 0])
    assert np.array_equal(alone[2], lost[:, 0])


def test_track_many_and_the_multi_tracker_interface(tiny_model):
    frames, gt = synthetic_sequence(22, n=6)
    boxes = [gt[0], (10, 10, 30, 30)]
    out = track_many(frames, boxes, "siamfc", model=str(tiny_model), threads=1)
    assert out.shape == (6, 2, 4) and np.array_equal(out[0], np.array(boxes, dtype=np.float64))
    mt = api.create_multi_tracker("siamfc", model=str(tiny_model), threads=1)
    got = run_together(mt, frames, boxes)[0]
    assert np.array_equal(out[1:], got)
    assert len(mt) == 2 and mt.info["backbone"] == TINY
    ok, tracked = mt.track(frames[-1])
    assert len(ok) == len(tracked) == 2 and all(isinstance(v, bool) for v in ok)
    mt.init(frames[0], [gt[0]])  # init again with another number of targets
    assert len(mt) == 1 and mt.update(frames[1]).shape == (1, 4)
    with pytest.raises(ValueError, match="at least one box"):
        mt.init(frames[0], [])
    with pytest.raises(RuntimeError, match="init"):
        MultiTracker(create_tracker("siamfc", model=str(tiny_model), threads=1)).update(frames[0])
    with pytest.raises(ValueError, match="positive size"):
        mt.init(frames[0], [gt[0], (1, 2, 0, 5)])


# -- the track CLI -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    frames, gt = three_targets(n=8)
    path = tmp_path_factory.mktemp("multi_clip") / "clip.avi"
    write_video(path, frames)
    return path, [",".join(f"{v:g}" for v in box) for box in gt[0]]


def test_cli_writes_one_file_per_target_equal_to_single_runs(tiny_model, clip, tmp_path, capsys, headless):
    path, inits = clip
    common = ["--video", path, "--model", tiny_model, "--threads", 1, "--tracker", "dimp"]
    code, out, err = track([*common, *[a for i in inits for a in ("--init", i)], "--output", tmp_path / "boxes.txt",
                            "--output-scores", tmp_path / "scores.txt", "--save-video", tmp_path / "out.avi"], capsys)
    assert code == 0, err
    assert "8 frames, 3 targets" in out and "boxes_0.txt ... " in out
    assert not (tmp_path / "boxes.txt").exists() and not (tmp_path / "scores.txt").exists()
    for k, init in enumerate(inits):
        code, _, err = track([*common, "--init", init, "--output", tmp_path / f"alone{k}.txt",
                              "--output-scores", tmp_path / f"alone_scores{k}.txt"], capsys)
        assert code == 0, err
        assert (tmp_path / f"boxes_{k}.txt").read_text() == (tmp_path / f"alone{k}.txt").read_text()
        assert (tmp_path / f"scores_{k}.txt").read_text() == (tmp_path / f"alone_scores{k}.txt").read_text()
        assert len((tmp_path / f"boxes_{k}.txt").read_text().splitlines()) == 8
    cap = cv2.VideoCapture(str(tmp_path / "out.avi"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 8
    cap.release()
    # the same boxes from a file, with the separators and comments it allows
    boxes_file = tmp_path / "init.txt"
    boxes_file.write_text("# x y w h\n" + inits[0] + "\n\n" + inits[1].replace(",", "\t") + "\n"
                          + inits[2].replace(",", " ") + "\n")
    code, _, err = track([*common, "--init-file", boxes_file, "--output", tmp_path / "f.txt"], capsys)
    assert code == 0, err
    for k in range(3):
        assert (tmp_path / f"f_{k}.txt").read_text() == (tmp_path / f"boxes_{k}.txt").read_text()


def test_cli_one_box_from_a_file_writes_the_plain_output(tiny_model, clip, tmp_path, capsys, headless):
    path, inits = clip
    (tmp_path / "one.txt").write_text(inits[1] + "\n")
    common = ["--video", path, "--model", tiny_model, "--threads", 1, "--tracker", "siamfc", "--max-frames", 4]
    assert track([*common, "--init-file", tmp_path / "one.txt", "--output", tmp_path / "a.txt"], capsys)[0] == 0
    assert track([*common, "--init", inits[1], "--output", tmp_path / "b.txt"], capsys)[0] == 0
    assert (tmp_path / "a.txt").read_text() == (tmp_path / "b.txt").read_text()
    assert not (tmp_path / "a_0.txt").exists()


def test_cli_selects_several_boxes_with_the_mouse(tiny_model, clip, tmp_path, capsys, monkeypatch, headless):
    path, inits = clip
    chosen = [tuple(float(v) for v in i.split(",")) for i in inits[:2]]
    monkeypatch.setattr(video, "has_display", lambda: True)
    monkeypatch.setattr(cli, "select_boxes", lambda frame, *a: chosen)
    monkeypatch.setattr(cli, "select_box", lambda frame, *a: pytest.fail("--select-many should use select_boxes"))
    code, _, err = track(["--video", path, "--model", tiny_model, "--threads", 1, "--max-frames", 3, "--select-many",
                          "--output", tmp_path / "sel.txt"], capsys)
    assert code == 0, err
    for k in range(2):
        first = (tmp_path / f"sel_{k}.txt").read_text().splitlines()[0]
        assert first == ",".join(f"{v:.2f}" for v in chosen[k])


def test_reselection_keeps_the_number_of_targets_while_files_are_per_target(monkeypatch, capsys):
    """r in the window: new boxes re-initialise the targets, unless each target has its own output file
    and the number of boxes changed (the files would no longer match the targets) or nothing was drawn."""
    class Targets:
        def __init__(self):
            self.boxes = [(1, 2, 3, 4), (5, 6, 7, 8)]

        def __len__(self):
            return len(self.boxes)

        def init(self, frame, boxes):
            self.boxes = list(boxes)

    class Sinks:
        def __init__(self, files):
            self.per_target_files = files

    picks = iter([[(9, 9, 9, 9)], [(9, 9, 9, 9)], [(1, 1, 5, 5), (2, 2, 5, 5)], cli.CLIError("no box selected")])

    def select(frame, many):
        pick = next(picks)
        if isinstance(pick, Exception):
            raise pick
        return pick
    monkeypatch.setattr(cli, "_select", select)
    t = Targets()
    cli._reselect(None, t, Sinks(True), True)  # one box for two files: kept
    assert len(t) == 2 and "re-select 2 box(es), not 1" in capsys.readouterr().err
    cli._reselect(None, t, Sinks(False), True)  # no files: any number
    assert t.boxes == [(9, 9, 9, 9)]
    t.boxes = [(0, 0, 1, 1), (0, 0, 2, 2)]
    cli._reselect(None, t, Sinks(True), True)  # the same number: re-initialised
    assert t.boxes == [(1, 1, 5, 5), (2, 2, 5, 5)]
    cli._reselect(None, t, Sinks(True), True)  # cancelled: kept
    assert t.boxes == [(1, 1, 5, 5), (2, 2, 5, 5)]


def test_select_boxes_reads_opencvs_selection(monkeypatch):
    monkeypatch.setattr(cv2, "selectROIs", lambda *a, **k: np.array([[1, 2, 30, 40], [5, 6, 0, 7], [8, 9, 10, 11]]))
    monkeypatch.setattr(cv2, "destroyWindow", lambda *a: None)
    assert cli.select_boxes(None) == [(1.0, 2.0, 30.0, 40.0), (8.0, 9.0, 10.0, 11.0)]  # an empty box is skipped
    monkeypatch.setattr(cv2, "selectROIs", lambda *a, **k: ())  # Esc before any box
    with pytest.raises(cli.CLIError, match="no box selected"):
        cli.select_boxes(None)


def test_init_file_and_output_names(tmp_path):
    f = tmp_path / "b.txt"
    f.write_text("1,2,3,4\n# comment\n\n 5\t6 7,8 \n")
    assert cli.read_init_file(str(f)) == [(1.0, 2.0, 3.0, 4.0), (5.0, 6.0, 7.0, 8.0)]
    f.write_text("1,2,3,4\n1,2,3\n")
    with pytest.raises(cli.CLIError, match="line 2 must be four numbers"):
        cli.read_init_file(str(f))
    assert cli.target_paths("out/boxes.txt", 1) == ["out/boxes.txt"]
    assert cli.target_paths("out/boxes.txt", 2) == ["out/boxes_0.txt", "out/boxes_1.txt"]
    assert cli.target_paths("boxes", 2) == ["boxes_0", "boxes_1"]
    assert cli.target_paths(None, 3) == [None] * 3


def test_annotated_targets_have_distinct_colours():
    colours = [video.target_colour(i) for i in range(8)]
    assert len(set(colours)) == 8 and (160, 160, 160) not in colours
    frame = np.zeros((120, 200, 3), np.uint8)
    boxes = [(60, 50, 30, 30), (120, 60, 40, 30), (10, 70, 20, 20)]
    video.annotate_targets(frame, boxes, [True, True, True], [False, False, True], [0.9, 0.8, 0.0], "status")
    for i, (x, y, w, h) in enumerate(boxes[:2]):
        assert tuple(int(v) for v in frame[y + h // 2, x]) == colours[i]  # the box's left edge, mid-height
    x, y, w, h = boxes[2]
    assert tuple(int(v) for v in frame[y + h // 2, x]) == (160, 160, 160)  # lost: grey


def test_bench_multi_target_runs_on_a_tiny_clip(tiny_model, tmp_path, capsys):
    from tool_import import load_tool
    bench = load_tool("bench_multi_target")
    frames, gt = synthetic_sequence(23, n=3)
    write_video(tmp_path / "c.avi", frames)
    code = bench.main(["--video", str(tmp_path / "c.avi"), "--init", ",".join(f"{v:g}" for v in gt[0]),
                       "--model", str(tiny_model), "--tracker", "siamfc",
                       "--targets", "1", "2", "--frames", "3", "--rounds", "1", "--json", str(tmp_path / "b.json")])
    out, err = capsys.readouterr()
    assert code == 0, err
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert [r["targets"] for r in rows] == [1, 2]
    assert all(r["ms_per_frame"] > 0 and r["ratio_vs_alone"] > 0 for r in rows)
    assert "vs each alone" in out


def _select_two_boxes(env, model, clip, out) -> tuple[int, str, str]:
    """One run of track --select-many: draw 60x50 and 90x40 (Enter after each), Esc, then q."""
    proc = subprocess.Popen([sys.executable, "-c", win_kit.LAUNCH, str(win_kit.TESTS), "--video", str(clip),
                             "--model", str(model), "--tracker", "siamfc", "--threads", "1", "--output", str(out),
                             "--show", "--select-many"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        win, w, h = win_kit.settled_window(env, "select the targets", proc)
        win_kit.drag(env, win, w // 2 - 100, h // 2 - 40, 60, 50)  # drag() confirms each box with Enter
        time.sleep(0.5)
        win_kit.drag(env, win, w // 2 + 20, h // 2 - 20, 90, 40)
        time.sleep(0.5)
        win_kit.press(env, win, "Escape")
        win_kit.wait_for(lambda: len(win_kit.read_boxes(out.with_name("boxes_1.txt"))) > 0 or proc.poll() is not None,
                         timeout=60)
        stdout, stderr = win_kit.quit_track(env, proc)  # the clip may have ended by now (the tiny model is fast)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, stdout, stderr


@pytest.mark.skipif(not (shutil.which("Xvfb") and shutil.which("xdotool")), reason="needs Xvfb and xdotool")
def test_select_many_in_a_real_window(display, tmp_path):  # noqa: F811  (the fixture imported above)
    """--select-many under Xvfb, driven with xdotool as a user drives it: two boxes drawn (Enter after
    each), Esc ends the selection, q quits; each box becomes a target with its own file. On a busy machine
    a drag sent while the window is being mapped can be lost: a run that did not get both boxes is retried."""
    torch.manual_seed(0)
    save_model(tmp_path / "m.pt", SiamNet(TINY).eval(), Spec.uniform(TINY, "fp"))
    frames, _ = synthetic_sequence(11, n=2000, size=(320, 240), target=(40, 32))
    write_video(tmp_path / "clip.avi", frames)
    env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
    for attempt in range(3):
        out = tmp_path / str(attempt) / "boxes.txt"
        out.parent.mkdir()
        code, stdout, stderr = _select_two_boxes(env, tmp_path / "m.pt", tmp_path / "clip.avi", out)
        if code == 0 and "2 targets" in stdout:
            break
    assert code == 0 and "2 targets" in stdout, (stdout, stderr[-2000:])
    first = [np.loadtxt(out.with_name(f"boxes_{k}.txt"), delimiter=",", ndmin=2)[0] for k in range(2)]
    assert np.allclose(first[0][2:], (60, 50), atol=1.0) and np.allclose(first[1][2:], (90, 40), atol=1.0), first
