"""`track` in a real window on a virtual screen: mouse selection at start, r re-selects, q quits.

Runs the CLI as its own process under Xvfb and drives it with xdotool, the
way a user drives it with mouse and keyboard. Skips where Xvfb or xdotool
is not installed (Debian: apt-get install xvfb xdotool; .ci/run does).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from backbones import Spec
from test_tracker_kit import TINY, synthetic_sequence, write_video
from tracker.model import SiamNet
from tracker.zoo import save_model

pytestmark = pytest.mark.skipif(not (shutil.which("Xvfb") and shutil.which("xdotool")),
                                reason="needs Xvfb and xdotool")

TESTS = Path(__file__).resolve().parent
SELECT_TITLE = "select the target"  # part of tracker.cli.select_box's window title
# The CLI in a fresh process, with the tiny test backbone registered.
LAUNCH = ("import sys; sys.path.insert(0, sys.argv.pop(1)); import test_tracker_kit; "
          "from tracker.cli import main; main(sys.argv[1:])")


@pytest.fixture
def display():
    read, write = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                            pass_fds=(write,), stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as f:
        num = f.readline().strip()
    try:
        yield f":{num}"
    finally:
        xvfb.terminate()
        xvfb.wait(10)


def xdo(env, *args) -> str:
    return subprocess.run(["xdotool", *map(str, args)], env=env, capture_output=True, text=True, timeout=20).stdout


def press(env, win: str, key: str) -> None:
    """Focus the window and type the key as a real (XTEST) key press: toolkits may drop the
    synthetic events of `xdotool key --window`."""
    xdo(env, "windowfocus", "--sync", win)
    xdo(env, "key", key)


def wait_window(env, pattern: str, proc, timeout: float = 60.0) -> tuple[str, int, int]:
    """(window id, width, height) of the first visible window whose title matches ``pattern``."""
    end = time.time() + timeout
    while time.time() < end:
        assert proc.poll() is None, f"track exited early waiting for {pattern!r}: {proc.communicate()}"
        ids = xdo(env, "search", "--onlyvisible", "--name", pattern).split()
        if ids:
            geo = xdo(env, "getwindowgeometry", ids[-1])
            w, h = geo.split("Geometry:")[1].split()[0].split("x")
            return ids[-1], int(w), int(h)
        time.sleep(0.2)
    raise AssertionError(f"no window {pattern!r} after {timeout:.0f} s")


def settled_window(env, pattern: str, proc, timeout: float = 60.0) -> tuple[str, int, int]:
    """wait_window, then the geometry again after a pause: a window just mapped may not have its
    final size or take mouse events yet, and a drag outside the image is a cancelled selection."""
    wait_window(env, pattern, proc, timeout)
    time.sleep(0.7)
    return wait_window(env, pattern, proc, timeout)


def drag(env, win: str, x0: int, y0: int, w: int, h: int) -> None:
    """Draw a w×h box with the mouse from (x0, y0) in window coordinates, then confirm with Enter."""
    # Without a window manager the selection window opens over the "track" window; make sure it
    # is the one on top, or the drag goes to the window underneath.
    xdo(env, "windowraise", win)
    xdo(env, "mousemove", "--window", win, x0, y0, "mousedown", "1",
        "mousemove", "--window", win, x0 + w // 2, y0 + h // 2,
        "mousemove", "--window", win, x0 + w, y0 + h, "mouseup", "1")
    time.sleep(0.3)
    press(env, win, "Return")


def read_boxes(path: Path) -> np.ndarray:
    """The complete lines of a box file that is still being written."""
    if not path.is_file():
        return np.zeros((0, 4))
    rows = [line.split(",") for line in path.read_text().split("\n")[:-1]]
    return np.array([[float(v) for v in r] for r in rows if len(r) == 4]).reshape(-1, 4)


def near_size(boxes: np.ndarray, w: float, h: float) -> np.ndarray:
    """Indices of boxes within 15% of w x h (the scale search moves a new box a little)."""
    return np.nonzero((np.abs(boxes[:, 2] / w - 1) < 0.15) & (np.abs(boxes[:, 3] / h - 1) < 0.15))[0]


def quit_track(env, proc, win: str | None = None) -> tuple[str, str]:
    """Press q in track's window (``win``, else whichever is visible) until the process ends, which
    it may have done already; its stdout and stderr."""
    for _ in range(10):
        if proc.poll() is not None:
            break
        for w in [win] if win else xdo(env, "search", "--onlyvisible", "--name", "^track$").split()[-1:]:
            press(env, w, "q")
        try:
            proc.wait(timeout=3)
            break
        except subprocess.TimeoutExpired:
            pass
    return proc.communicate(timeout=60)


def wait_for(condition, timeout: float) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_select_reselect_and_quit_in_a_real_window(display, tmp_path):
    torch.manual_seed(0)
    save_model(tmp_path / "m.pt", SiamNet(TINY).eval(), Spec.uniform(TINY, "fp"))
    n = 4000  # long enough that the run is still going when q comes, retries included
    frames, _ = synthetic_sequence(11, n=n, size=(320, 240), target=(40, 32))
    write_video(tmp_path / "clip.avi", frames)
    out = tmp_path / "boxes.txt"
    env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}

    def launch():
        return subprocess.Popen([sys.executable, "-c", LAUNCH, str(TESTS), "--video", str(tmp_path / "clip.avi"),
                                 "--model", str(tmp_path / "m.pt"), "--tracker", "siamfc", "--threads", "1",
                                 "--output", str(out), "--show"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    proc = launch()
    try:
        # 1. No --init: the first frame comes up for a mouse selection. Box sizes do not
        #    depend on where the window puts the image, so they are what we check. A drag lost
        #    on a busy machine is a cancelled selection, after which track exits ("no box
        #    selected", its documented answer): start it again.
        for _ in range(3):
            win, w, h = settled_window(env, SELECT_TITLE, proc)
            drag(env, win, w // 2 - 30, h // 2 - 25, 60, 50)
            if not wait_for(lambda: proc.poll() is not None, timeout=2):
                break
            _, err = proc.communicate(timeout=60)
            assert "no box selected" in err, err
            proc = launch()
        # 2. Tracking runs in the "track" window; r re-selects on the current frame. On a busy
        #    machine a key or a drag sent while a window is still being mapped can be lost (a
        #    lost drag is a cancelled selection, which keeps the old box): retry until the
        #    flushed output shows the new size.
        for _ in range(8):
            win, w, h = wait_window(env, "^track$", proc)
            time.sleep(0.5)
            press(env, win, "r")
            try:
                sel, w, h = settled_window(env, SELECT_TITLE, proc, timeout=5)
            except AssertionError as e:
                if "exited" in str(e):
                    raise
                continue
            drag(env, sel, w // 2 - 45, h // 2 - 20, 90, 40)
            if wait_for(lambda: len(near_size(read_boxes(out), 90, 40)) > 0, timeout=6):
                break
        else:
            raise AssertionError("the re-selected 90x40 box never reached the output")
        # 3. q ends the run cleanly, with every box so far written.
        win, _, _ = wait_window(env, "^track$", proc)
        stdout, stderr = quit_track(env, proc, win)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr[-2000:]
    assert "frames" in stdout and "fps mean" in stdout
    boxes = np.loadtxt(out, delimiter=",", ndmin=2)
    assert 2 < len(boxes) < n, "q should stop the run before the video ends"
    assert np.allclose(boxes[0, 2:], (60, 50), atol=1.0), f"frame 1 is not the selected box: {boxes[0]}"
    # After re-selection the size jumps to about 90x40 (the scale search then moves it a little).
    w_h = boxes[:, 2:]
    reselected = near_size(boxes, 90, 40)
    assert len(reselected) > 0, f"no box near the re-selected 90x40 size; sizes seen: {np.unique(w_h.round(), axis=0)[:10]}"
    assert np.all(np.abs(w_h[1: reselected[0], 0] / 60 - 1) < 0.3), "before r, boxes should keep the first size"
