"""b2track under the real VOT toolkit, over TraX (python -m tracker.trax), against ``track``'s own boxes.

A tiny VOT workspace (one OTB sequence cut to a few frames, rectangle ground truth, a local stack
with an unsupervised experiment, no dataset download) is evaluated by the toolkit's ``vot
evaluate``; the toolkit's result file must hold the same boxes as ``track --output`` on the
same frames. ``track`` reads a video, so the frames go into a lossless (PNG) AVI first, checked
to decode to the very pixels the toolkit's JPEGs give.

The toolkit lives in its own venv (tools/vot-toolkit.txt says why): .venv-vot at the project
root (what .ci/run makes), or the ``vot`` command that B2TRACK_VOT names. Skips when neither
exists, when vot-trax is missing here, or when ../shared is absent.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
FRAMES = 12
SEQ = "Crossing"
TRACKER_ARGS = ["--tracker", "dimp", "--budget", "0.3", "--threads", "1"]


def _vot_command():
    named = os.environ.get("B2TRACK_VOT")
    for cand in (named, ROOT / ".venv-vot" / "bin" / "vot"):
        if cand and Path(cand).is_file():
            return str(cand)
    pytest.skip("VOT toolkit not installed: python3 -m venv .venv-vot && .venv-vot/bin/pip install -r tools/vot-toolkit.txt"
                + (f" (B2TRACK_VOT={named} does not exist)" if named else ""))


def _read_gt(path):
    rows = [line.replace("\t", ",").replace(" ", ",") for line in Path(path).read_text().splitlines() if line.strip()]
    return np.array([[float(v) for v in r.split(",") if v] for r in rows])


def _workspace(ws: Path, src: Path) -> np.ndarray:
    """A VOT workspace of one sequence (first FRAMES frames of src); returns its ground truth."""
    seq = ws / "sequences" / SEQ
    (seq / "color").mkdir(parents=True)
    (ws / "results").mkdir()
    for i in range(1, FRAMES + 1):
        shutil.copy(src / "img" / f"{i:04d}.jpg", seq / "color" / f"{i:08d}.jpg")
    gt = _read_gt(src / "groundtruth_rect.txt")[:FRAMES]
    (seq / "groundtruth.txt").write_text("".join(",".join(f"{v:g}" for v in row) + "\n" for row in gt))
    (seq / "sequence").write_text(f"name={SEQ}\nfps=30\nformat=default\nchannels.color=color/%08d.jpg\n")
    (ws / "sequences" / "list.txt").write_text(SEQ + "\n")
    # No dataset: key, so the toolkit downloads nothing; unsupervised = one run from frame 1 (OPE).
    (ws / "stack.yaml").write_text("title: b2track test\nexperiments:\n  baseline:\n    type: unsupervised\n"
                                   "    repetitions: 1\n")
    (ws / "config.yaml").write_text("stack: stack.yaml\nregistry:\n- ./trackers.ini\n")
    # The README's snippet: b2track's own interpreter, so the toolkit's venv never imports b2track.
    (ws / "trackers.ini").write_text(
        "[b2track]\nlabel = b2track\nprotocol = trax\n"
        f"command = {sys.executable} -m tracker.trax {' '.join(TRACKER_ARGS)}\n")
    return gt


def _lossless_video(frames_dir: Path, path: Path) -> None:
    import cv2
    frames = [cv2.imread(str(p)) for p in sorted(frames_dir.glob("*.jpg"))]
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"png "), 30, (w, h))
    assert writer.isOpened(), "OpenCV cannot write a PNG AVI here"
    for f in frames:
        writer.write(f)
    writer.release()
    cap = cv2.VideoCapture(str(path))
    for f in frames:  # the comparison below is only fair on identical pixels
        ok, got = cap.read()
        assert ok and np.array_equal(got, f)
    cap.release()


def test_vot_toolkit_runs_b2track_like_track(shared_dir, tmp_path):
    vot = _vot_command()
    pytest.importorskip("trax", reason='vot-trax not installed here: pip install -e ".[vot]"')
    src = shared_dir / "data" / "sequences" / "otb" / SEQ
    ws = tmp_path / "ws"
    gt = _workspace(ws, src)

    env = dict(os.environ, VOT_RESULTS_BINARY="0")  # text results: one region per line
    run = subprocess.run([vot, "evaluate", "--workspace", str(ws), "b2track"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    result = ws / "results" / "b2track" / "baseline" / SEQ / f"{SEQ}_001.txt"
    assert result.is_file(), f"no toolkit result; files: {sorted(p.name for p in ws.rglob('*'))}"
    lines = result.read_text().split()
    assert len(lines) == FRAMES and lines[0] == "1"  # VOT writes the initialisation frame as the code 1
    vot_boxes = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
    confidence = np.loadtxt(result.with_name(f"{SEQ}_001_confidence.value"), skiprows=1)
    assert confidence.shape == (FRAMES - 1,) and np.all(np.isfinite(confidence))  # the tracker's, per frame

    video = tmp_path / "frames.avi"
    _lossless_video(ws / "sequences" / SEQ / "color", video)
    out = tmp_path / "track.txt"
    x, y, w, h = gt[0]
    run = subprocess.run([sys.executable, "-m", "tracker.cli", "--video", str(video), "--init", f"{x:g},{y:g},{w:g},{h:g}",
                          "--output", str(out), *TRACKER_ARGS], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    track_boxes = np.loadtxt(out, delimiter=",")
    assert track_boxes.shape == (FRAMES, 4)
    # track writes 2 decimals; TraX carries float32: equal up to those roundings.
    np.testing.assert_allclose(vot_boxes, track_boxes[1:], atol=0.006, rtol=0)
    # Not a trivial agreement: the target moves, the boxes follow it.
    assert np.abs(track_boxes[-1, :2] - track_boxes[0, :2]).max() > 5


def _start_trax(args, tmp_path):
    return subprocess.Popen([sys.executable, "-m", "tracker.trax", *args], cwd=tmp_path,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_trax_session_ends_in_one_line_on_an_unreadable_frame(shared_dir, tmp_path):
    """A TraX client of our own (vot-trax's), no toolkit needed: a good start, then a missing frame."""
    pytest.importorskip("trax", reason='vot-trax not installed here: pip install -e ".[vot]"')
    from trax import TraxException
    from trax.client import Client
    from trax.image import FileImage
    from trax.region import Rectangle

    src = shared_dir / "data" / "sequences" / "otb" / SEQ
    x, y, w, h = _read_gt(src / "groundtruth_rect.txt")[0]
    proc = _start_trax(TRACKER_ARGS, tmp_path)
    try:
        # log= a callable: vot-trax 4.0.2's Client fails with log=False (a None C callback)
        client = Client(stream=(proc.stdin.fileno(), proc.stdout.fileno()), timeout=60, log=lambda message: None)
        assert client.tracker_name == "b2track" and "rectangle" in client.region_formats
        objects, _ = client.initialize({"color": FileImage.create(str(src / "img" / "0001.jpg"))},
                                       [(Rectangle.create(x, y, w, h), {})], {})
        assert objects[0][0].bounds() == pytest.approx((x, y, w, h))
        objects, _ = client.frame({"color": FileImage.create(str(src / "img" / "0002.jpg"))}, {}, [])
        box = objects[0][0].bounds()
        assert abs(box[0] - x) < 10 and abs(box[1] - y) < 10 and float(objects[0][1]["confidence"]) > 0
        missing = tmp_path / "gone.jpg"
        with pytest.raises(TraxException, match="cannot read frame"):
            client.frame({"color": FileImage.create(str(missing))}, {}, [])
        assert proc.wait(timeout=30) == 2
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read().decode().strip().splitlines()
    assert err == [f"tracker.trax: error: cannot read frame {missing}: No such file or directory"]


@pytest.mark.parametrize("args, message", [
    (["--budget", "1.5"], "--budget must be in (0, 1], got 1.5"),
    (["--model", "no/such/model.pt"], "model file not found: no/such/model.pt"),
    (["--tracker", "kcf"], "unknown tracker 'kcf'"),
    (["--param", "no_such_param=1"], "no_such_param"),
])
def test_trax_bad_options_exit_2_in_one_line(tmp_path, args, message):
    pytest.importorskip("trax", reason='vot-trax not installed here: pip install -e ".[vot]"')
    proc = _start_trax(args, tmp_path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tracker.trax: error: ") and message in lines[0], lines
    assert out == b""  # nothing on the TraX channel
