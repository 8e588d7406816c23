"""tools/long_run.py: its figures from the per-frame log, a short real run of both paths, one-line failures."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from backbones import Spec
from test_tracker_kit import synthetic_sequence, write_video
from tool_import import load_tool
from tracker.model import SiamNet
from tracker.zoo import save_model

lr = load_tool("long_run")
FRAMES = 40


def _log(frame_s, rss_kb, first_read=1):
    """A capture log: reads first_read.. with the given gaps between reads (s) and RSS per read."""
    wall = np.concatenate([[100.0], 100.0 + np.cumsum(frame_s)])
    reads = np.arange(first_read, first_read + len(wall))
    return np.stack([reads, wall, wall / 2, rss_kb], axis=1)


def test_steady_run_passes_and_figures_come_from_the_right_frames():
    n = 40  # tracked frames; 41 reads (the last returns nothing)
    gaps = np.full(n, 0.05)
    gaps[0] = 1.0  # frame 1 holds the tracker's init: in no window
    rss = np.full(n + 1, 300_000.0)
    rss[20] = 310_000.0  # after frame 20 (warm-up n // 2)
    rss[-1] = 315_000.0  # after the last frame
    s = lr.summarise(_log(gaps, rss, first_read=8), first_read=8, frames=n)
    assert (s["warmup"], s["window"]) == (20, 19)
    assert s["growth_mb"] == pytest.approx((315_000 - 310_000) * 1024 / 1e6)
    assert s["rss_peak_mb"] == pytest.approx(315_000 * 1024 / 1e6)
    assert s["floor_growth_mb"] == 0  # both windows hold 300,000 kB samples: the blocks were given back
    assert s["fps_first"] == pytest.approx(20.0) and s["fps_last"] == pytest.approx(20.0)
    assert s["cpu_ms_first"] == pytest.approx(25.0)  # the fake CPU clock runs at half the wall clock
    assert s["frame_ms_p10_first"] == pytest.approx(50.0) and s["frame_ms_p10_last"] == pytest.approx(50.0)
    assert s["memory_pass"] and s["fps_pass"]


def test_leak_and_slowdown_fail():
    n = 3001
    gaps = np.where(np.arange(n) < 1500, 0.05, 0.06)  # 20 fps, then 16.7 fps (ratio 0.83)
    rss = 400_000.0 + 10.0 * np.arange(n + 1)  # 10 kB a frame: ~25 MB over the 2501 frames after warm-up
    s = lr.summarise(_log(gaps, rss), first_read=1, frames=n)
    assert (s["warmup"], s["window"]) == (500, 1000)
    assert s["fps_ratio"] == pytest.approx(0.05 / 0.06)
    assert (s["frame_ms_p10_first"], s["frame_ms_p10_last"]) == pytest.approx((50.0, 60.0))
    assert s["slope_kb_per_1000_frames"] == pytest.approx(10_000, rel=1e-6)
    assert s["growth_mb"] == pytest.approx(2501 * 10 * 1024 / 1e6)
    assert s["floor_growth_mb"] == pytest.approx((2001 - 500) * 10 * 1024 / 1e6)  # rows 2001 vs 500
    assert not s["memory_pass"] and not s["fps_pass"]


def test_report_names_the_verdicts_and_a_shrunk_run():
    n = 3001
    s = lr.summarise(_log(np.where(np.arange(n) < 1500, 0.05, 0.06), np.full(n + 1, 1000.0)), first_read=1, frames=n)
    text = "\n".join(lr.report_lines("webcam", s, lr.build_parser().parse_args([])))
    assert "growth +0.00 MB -> PASS (< 20 MB)" in text and "floor growth +0.00 MB" in text
    assert "ratio 0.833 -> FAIL (>= 0.9)" in text and "shrunk" not in text
    short = lr.summarise(_log(np.full(40, 0.05), np.full(41, 1000.0)), first_read=1, frames=40)
    assert "(shrunk: short run)" in lr.report_lines("video", short, lr.build_parser().parse_args([]))[0]


def test_a_run_that_stopped_early_is_a_failure():
    log = _log(np.full(10, 0.05), np.full(11, 1.0))
    with pytest.raises(lr.Failure, match="ended after reading 11 of 30 frames"):
        lr.summarise(log, first_read=1, frames=30)


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """A random-weight AlexNet-half model (the run's bookkeeping is under test, not accuracy) and a 12-frame clip."""
    d = tmp_path_factory.mktemp("long_run")
    torch.manual_seed(0)
    save_model(d / "model.pt", SiamNet("alexnet-half").eval(), Spec.uniform("alexnet-half", "fp"), {"note": "test"})
    frames, gt = synthetic_sequence(5, n=12, size=(160, 120), target=(30, 24))
    write_video(d / "clip.avi", frames)
    (d / "notes.txt").write_text("not a video\n")
    return {"dir": d, "model": str(d / "model.pt"), "video": str(d / "clip.avi"),
            "init": ",".join(str(int(v)) for v in gt[0])}


def _main(argv, capsys):
    with pytest.raises(SystemExit) as e:
        lr.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return e.value.code, out, err


def test_short_real_run_of_both_paths(assets, tmp_path, capsys):
    keep = tmp_path / "keep"
    code, out, err = _main(["--frames", FRAMES, "--model", assets["model"], "--video", assets["video"],
                            "--init", assets["init"], "--threads", 1, "--keep", keep, "--json"], capsys)
    assert code in (0, 1), err  # the verdict depends on this machine's load; the bookkeeping does not
    r = json.loads(out)
    for path in ("video", "webcam"):
        s = r["paths"][path]
        # every frame tracked and written, though the clip has only 12: it was decoded again and again
        assert len((keep / f"{path}-boxes.txt").read_text().splitlines()) == FRAMES
        log = lr.read_log(keep / f"{path}-frames.log")
        assert len(log) == FRAMES + 1  # one read per frame, plus the one that found the end
        rss_mb, wall = log[:, 3] * 1024 / 1e6, log[:, 1]
        assert (s["warmup"], s["window"]) == (20, 19)
        assert s["rss_warmup_mb"] == pytest.approx(rss_mb[20])  # read of frame 21: after frame 20
        assert s["rss_end_mb"] == pytest.approx(rss_mb[-1])
        assert s["growth_mb"] == pytest.approx(rss_mb[-1] - rss_mb[20])
        assert s["fps_first"] == pytest.approx(19 / (wall[20] - wall[1]))  # frames 2-20
        assert s["fps_last"] == pytest.approx(19 / (wall[40] - wall[21]))  # frames 22-40
        assert s["fps_pass"] == (s["fps_last"] >= 0.9 * s["fps_first"])
        assert s["memory_pass"] == (s["growth_mb"] < 20)
    assert (keep / "video-tracked.mp4").stat().st_size > 0
    assert r["pass"] == (code == 0)


@pytest.mark.parametrize("argv, message", [
    (["--video", "{dir}/missing.mp4", "--init", "1,2,3,4"], "video not found"),
    (["--video", "{dir}/notes.txt", "--init", "1,2,3,4"], "is text"),
    (["--video", "{dir}/clip.avi"], "--video needs --init"),
    (["--video", "{dir}/clip.avi", "--init", "1,2,3"], "--init must be four numbers"),
    (["--budget", "2"], "--budget must be in (0, 1]"),
    (["--frames", "5"], "--frames must be >= 10"),
    (["--frames", "many"], "argument --frames: invalid int value"),
    (["--model", "{dir}/nothing.pt"], "model file not found"),
    # track itself refuses it: its one line is passed on
    (["--video", "{dir}/clip.avi", "--init", "150,100,40,40", "--model", "{dir}/model.pt", "--paths", "video"],
     "track failed on the video path (exit 2): track: error: --init box 150,100,40,40 is outside"),
])
def test_bad_input_exits_2_with_one_line(assets, capsys, argv, message):
    code, out, err = _main([a.format(dir=assets["dir"]) for a in argv], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and message in lines[0], err
