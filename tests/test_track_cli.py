"""The ``track`` CLI end to end, in process: outputs, every bad input (exit 2), webcam, display, Ctrl-C."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from backbones import Spec
from test_tracker_kit import TINY, FakeCapture, synthetic_sequence, write_video
from tests.helpers.track_cli import run_track as run
from tracker import cli, video
from tracker.model import SiamNet
from tracker.zoo import save_model

N_FRAMES = 12


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """A random-weight tiny model (I/O is under test here, not accuracy), a zoo and a short video."""
    d = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    net = SiamNet(TINY).eval()
    fp = Spec.uniform(TINY, "fp")
    save_model(d / "fp.pt", net, fp, {"note": "test"})
    half = Spec.build(TINY, {"c1": "fp", "c2": "bin", "c3": "bin"}, provenance={"strategy": "hand"})
    net.backbone.set_modes(half.units)
    save_model(d / "bin.pt", net, half, {"note": "test"})
    zoo = d / "zoo"
    zoo.mkdir()
    save_model(zoo / "fp.pt", SiamNet(TINY).eval(), fp)
    (zoo / "manifest.json").write_text(json.dumps({"format": "b2track-zoo/1", "entries": [
        {"name": "tiny-fp", "file": "fp.pt", "backbone": TINY, "budget": 1.0}]}))
    frames, gt = synthetic_sequence(7, n=N_FRAMES, size=(200, 150), target=(30, 24))
    write_video(d / "clip.avi", frames)
    return {"dir": d, "fp": d / "fp.pt", "bin": d / "bin.pt", "zoo": zoo, "video": d / "clip.avi",
            "frames": frames, "init": ",".join(str(int(v)) for v in gt[0]), "budget_bin": half.budget}


pytestmark = pytest.mark.usefixtures("headless")  # tests/conftest.py


def base(a, *extra):
    return ["--video", a["video"], "--init", a["init"], "--model", a["fp"], "--threads", 1, *extra]


def test_writes_one_line_per_frame_and_summary(assets, tmp_path, capsys):
    out = tmp_path / "boxes.txt"
    code, stdout, err = run(base(assets, "--output", out, "--tracker", "siamfc"), capsys)
    assert code == 0, err
    lines = out.read_text().splitlines()
    assert len(lines) == N_FRAMES
    assert lines[0] == ",".join(f"{float(v):.2f}" for v in assets["init"].split(","))
    assert all(len(l.split(",")) == 4 for l in lines)
    for word in (f"{N_FRAMES} frames", "fps", f"backbone {TINY}", "budget 1.000", "kernel torch"):
        assert word in stdout


def test_param_overrides_a_tracker_parameter(assets, tmp_path, capsys):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    assert run(base(assets, "--output", a, "--tracker", "siamfc", "--max-frames", 6), capsys)[0] == 0
    code, _, err = run(base(assets, "--output", b, "--tracker", "siamfc", "--max-frames", 6,
                            "--param", "window_influence=0.9", "--param", "num_scales=1"), capsys)
    assert code == 0, err
    assert a.read_text() != b.read_text()  # a heavy window and one scale track differently


def test_max_frames_video_and_determinism(assets, tmp_path, capsys):
    a, b, vid = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "out.avi"
    assert run(base(assets, "--output", a, "--max-frames", 7, "--save-video", vid), capsys)[0] == 0
    assert run(base(assets, "--output", b, "--max-frames", 7), capsys)[0] == 0
    assert len(a.read_text().splitlines()) == 7
    assert a.read_text() == b.read_text()  # same input, same threads -> same boxes
    cap = cv2.VideoCapture(str(vid))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 7


def test_binary_model_reports_its_budget_and_kernel(assets, tmp_path, capsys):
    code, out, err = run(["--video", assets["video"], "--init", assets["init"], "--model", assets["bin"],
                          "--max-frames", 3, "--threads", 1], capsys)
    assert code == 0, err
    assert f"budget {assets['budget_bin']:.3f}" in out
    assert "kernel packed" in out or "kernel torch" in out


def test_budget_selects_zoo_entry(assets, capsys, monkeypatch):
    monkeypatch.setenv("B2TRACK_ZOO", str(assets["zoo"]))
    code, out, err = run(["--video", assets["video"], "--init", assets["init"], "--budget", 1.0,
                          "--max-frames", 2, "--threads", 1], capsys)
    assert code == 0, err
    assert "zoo model tiny-fp" in err


@pytest.mark.parametrize("args, message", [
    (["--video", "{dir}/missing.mp4"], "video not found"),
    (["--video", "{dir}"], "not a video file"),
    (["--video", "{dir}/text.mp4"], "is text"),
    (["--video", "{dir}/boxes.txt"], "is text"),  # FFmpeg would play it as ANSI art
    (["--video", "{dir}/empty.avi"], "video"),
    (["--init", "1,2,3"], "--init must be four numbers"),
    (["--init", "a,b,c,d"], "--init must be four numbers"),
    (["--init", "10,10,0,20"], "zero or negative size"),
    (["--init", "500,10,20,20"], "outside"),
    (["--init", "-30,10,20,20"], "outside"),
    (["--budget", "0"], "--budget must be in (0, 1]"),
    (["--budget", "1.5"], "--budget must be in (0, 1]"),
    (["--tracker", "kcf"], "invalid choice: 'kcf'"),  # choices come from tracker.registry
    (["--model", "{dir}/corrupt.pt"], "not a torch file, or truncated"),
    (["--model", "{dir}/foreign.pt"], "format 'something-else/3', expected 'b2track-model/1'"),
    (["--model", "{dir}/wrong_backbone.pt"], "incompatible model"),
    (["--model", "{dir}/nope.pt"], "model file not found"),
    (["--max-frames", "0"], "--max-frames"),
    (["--bogus"], "unrecognized arguments"),
    (["--param", "lost_ratio"], "--param expects KEY=VALUE"),
    (["--param", "windw_influence=0.3"], "unknown DiMPParams parameter"),
    (["--param", "scale_mode=cubic"], "scale_mode must be 'pyramid' or 'dsst'"),
    (["--param", "colour_weight=abc"], "colour_weight must be float"),
    (["--param", "colour_weight=-1"], "colour_weight must be within [0, 1]"),
    (["--param", "num_scales=2.5"], "num_scales must be int"),
])
def test_bad_input_exits_2_with_one_line(assets, capsys, args, message):
    d = assets["dir"]
    (d / "text.mp4").write_text("not a video\n")
    (d / "boxes.txt").write_text("".join(f"{i},{i + 1},20,30\n" for i in range(2000)))
    if not (d / "empty.avi").exists():
        write_video(d / "empty.avi", [], size=(64, 48))  # a container without frames (or no file at all)
        if not (d / "empty.avi").exists():
            (d / "empty.avi").write_bytes(b"")
    (d / "corrupt.pt").write_bytes(b"\x80\x04garbage" * 10)
    torch.save({"format": "something-else/3", "state": {}}, d / "foreign.pt")
    ck = torch.load(assets["fp"], weights_only=True)
    ck["spec"] = Spec.uniform("resnet16-half", "fp").to_dict()  # weights of tiny, spec of another backbone
    torch.save(ck, d / "wrong_backbone.pt")
    argv = {"--video": str(assets["video"]), "--init": assets["init"], "--model": str(assets["fp"])}
    flags = []
    i = 0
    while i < len(args):
        k = args[i]
        if i + 1 < len(args) and not args[i + 1].startswith("--"):
            argv[k] = args[i + 1].format(dir=d)
            i += 2
        else:
            flags.append(k)
            i += 1
    defaults = ["--threads", "1"] + ([] if "--max-frames" in argv else ["--max-frames", "2"])
    full = [x for kv in argv.items() for x in kv] + flags + defaults
    code, out, err = run(full, capsys)
    assert code == 2
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("track: error:"), err
    assert message in lines[0]
    assert "Traceback" not in err


def test_no_zoo_entry_at_or_below_budget(assets, capsys, monkeypatch):
    monkeypatch.setenv("B2TRACK_ZOO", str(assets["zoo"]))
    code, out, err = run(["--video", assets["video"], "--init", assets["init"], "--budget", 0.2], capsys)
    assert code == 2 and "no zoo model at or below budget 0.2" in err


def test_model_url_download_failure(assets, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("B2TRACK_CACHE", str(tmp_path))
    code, out, err = run(base(assets)[:4] + ["--model", "http://127.0.0.1:9/model.pt"], capsys)
    assert code == 2 and "could not download model" in err.splitlines()[-1]


def test_no_display_without_init(assets, capsys):
    code, out, err = run(["--video", assets["video"], "--model", assets["fp"]], capsys)
    assert code == 2 and "no display" in err and "--init" in err
    code, out, err = run(base(assets, "--show"), capsys)
    assert code == 2 and "--show needs a display" in err


def test_select_box_when_a_display_exists(assets, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(video, "has_display", lambda: True)
    monkeypatch.setattr(cli, "select_box", lambda frame, *a: tuple(float(v) for v in assets["init"].split(",")))
    out = tmp_path / "b.txt"
    code, _, err = run(["--video", assets["video"], "--model", assets["fp"], "--output", out, "--max-frames", 3,
                        "--threads", 1], capsys)
    assert code == 0, err
    assert out.read_text().splitlines()[0].startswith(assets["init"].split(",")[0])


def test_webcam_end_to_end_with_fake_capture(assets, tmp_path, capsys, monkeypatch):
    opened = []

    def factory(index):
        opened.append(index)
        return FakeCapture(assets["frames"])

    monkeypatch.setattr(video, "capture_factory", factory)
    out, vid = tmp_path / "cam.txt", tmp_path / "cam.avi"
    code, stdout, err = run(["--webcam", 3, "--init", assets["init"], "--model", assets["fp"], "--output", out,
                             "--save-video", vid, "--threads", 1], capsys)
    assert code == 0, err
    assert opened == [3]
    assert len(out.read_text().splitlines()) == N_FRAMES  # the stream ended: every frame tracked
    assert f"{N_FRAMES} frames" in stdout


def test_text_detection_spares_real_videos(assets, tmp_path):
    assert not video.looks_like_text(assets["video"])
    y4m = tmp_path / "dark.y4m"  # text header, then raw frames that may be all < 128
    y4m.write_bytes(b"YUV4MPEG2 W8 H8 F25:1 C mono\nFRAME\n" + bytes(range(32, 96)))
    assert not video.looks_like_text(y4m)
    utf8 = tmp_path / "notes.md"
    utf8.write_text("é" * 3000)  # the probe cuts a two-byte character
    assert video.looks_like_text(utf8)


def test_webcam_not_available(assets, capsys, monkeypatch):
    monkeypatch.setattr(video, "capture_factory", lambda i: FakeCapture([], opened=False))
    code, out, err = run(["--webcam", 0, "--init", "1,1,5,5", "--model", assets["fp"]], capsys)
    assert code == 2 and "webcam 0 is not available" in err


def test_capture_factory_from_environment(monkeypatch):
    monkeypatch.setenv("B2TRACK_CAPTURE_FACTORY", "test_tracker_kit:empty_capture")
    with pytest.raises(video.VideoError, match="gives no frames"):
        video.open_webcam(0)


def test_ctrl_c_keeps_boxes_so_far(assets, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(video, "capture_factory", lambda p: FakeCapture(assets["frames"], interrupt_at=5))
    out = tmp_path / "part.txt"
    code, stdout, err = run(base(assets, "--output", out), capsys)
    assert code == 130
    assert len(out.read_text().splitlines()) == 5  # frames read before the interrupt, all flushed
    assert "interrupted after 5 frames" in err


def test_help_lists_every_option_with_examples():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    r = subprocess.run([sys.executable, "-c", "from tracker.cli import main; main(['--help'])"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0
    for opt in ("--video", "--webcam", "--init", "--budget", "--tracker", "--model", "--output", "--save-video",
                "--show", "--max-frames", "--threads", "examples:"):
        assert opt in r.stdout


def test_parse_box_and_bounds():
    assert cli.parse_box("1, 2,3.5,4") == (1.0, 2.0, 3.5, 4.0)
    for bad in ("1,2,3", "1,2,3,x", "1,2,nan,4", "1,2,3,-4"):
        with pytest.raises(cli.CLIError):
            cli.parse_box(bad)
    cli.check_box_in_frame((0, 0, 100, 50), 100, 50)
    with pytest.raises(cli.CLIError):
        cli.check_box_in_frame((90, 0, 20, 10), 100, 50)
    assert np.isfinite(cli.parse_box("0,0,1,1")).all()


def test_start_frame(assets, tmp_path, capsys):
    out = tmp_path / "s.txt"
    code, stdout, err = run(base(assets, "--start-frame", 5, "--output", out), capsys)
    assert code == 0, err
    lines = out.read_text().splitlines()
    assert len(lines) == N_FRAMES - 4 and lines[0].startswith(assets["init"].split(",")[0])
    code, _, err = run(base(assets, "--start-frame", 99), capsys)
    assert code == 2 and "the video has only" in err
    code, _, err = run(base(assets, "--init", "-5,10,20,20"), capsys)  # a negative x is a value, not an option
    assert code == 2 and "outside" in err


def test_output_scores_has_one_line_per_box(assets, tmp_path, capsys):
    boxes, scores = tmp_path / "b.txt", tmp_path / "s.txt"
    code, _, err = run(base(assets, "--output", boxes, "--output-scores", scores, "--save-video", tmp_path / "v.avi"),
                       capsys)
    assert code == 0, err
    lines = scores.read_text().splitlines()
    assert len(lines) == len(boxes.read_text().splitlines()) == N_FRAMES
    vals = [tuple(line.split(",")) for line in lines]
    assert vals[0] == ("1.0000", "0")  # frame 1 is the given box
    assert all(0.0 <= float(s) <= 1.0 and lost in ("0", "1") for s, lost in vals)
    # an unwritable scores file is refused before tracking, in one line
    code, _, err = run(base(assets, "--output-scores", tmp_path / "b.txt" / "s.txt"), capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "cannot write" in err


def test_track_gives_an_fp_model_every_core_with_one_for_learning_and_a_b2nn_one_thread_unless_told(assets, capsys):
    """Default threads: every core for an FP model, one of them the learning thread; one for a B2NN
    on the packed kernels. An explicit --threads is kept."""
    from backbones import kernels

    before = torch.get_num_threads(), cv2.getNumThreads()
    cores = os.cpu_count() or 1
    try:
        torch.set_num_threads(2)
        code, out, err = run(["--video", assets["video"], "--init", assets["init"], "--model", assets["bin"],
                              "--max-frames", 3], capsys)
        assert code == 0, err
        n = 1 if "kernel packed" in out else cores
        assert re.search(rf"threads {n}\b", out) and torch.get_num_threads() == max(1, n - 1)
        code, out, err = run(["--video", assets["video"], "--init", assets["init"], "--model", assets["fp"],
                              "--max-frames", 3], capsys)
        assert code == 0, err
        assert re.search(rf"threads {cores}\b", out) and torch.get_num_threads() == max(1, cores - 1)
        code, out, err = run(["--video", assets["video"], "--init", assets["init"], "--model", assets["bin"],
                              "--max-frames", 3, "--threads", 2], capsys)
        assert code == 0, err
        assert re.search(r"threads 2\b", out) and torch.get_num_threads() == 1  # asked for: one learns, one computes
    finally:
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])
        kernels.set_num_threads(None)
