"""tools/profile_track.py: what it profiles, and its one-line failures."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from test_tracker_kit import write_video
from tests.helpers.synthetic import TINY
from tool_import import load_tool
from tracker.dimp import DiMPTracker
from tracker.model import SiamNet

prof = load_tool("profile_track")


def _frames(n=5, size=(96, 128)):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, size + (3,), dtype=np.uint8)
    return [np.roll(base, i, axis=1) for i in range(n)]


def test_profiles_exactly_passes_times_updates():
    torch.manual_seed(0)
    trk = DiMPTracker(SiamNet(TINY).eval(), threads=1)
    frames = _frames(5)
    ms, stats = prof.profile_updates(trk, frames, (40, 30, 24, 20), passes=2)
    calls = {fn[2]: v[1] for fn, v in stats.stats.items()}  # function name -> primitive calls
    assert calls["update"] == 2 * 4 and ms > 0


def test_read_frames_starts_at_the_given_frame(tmp_path):
    frames = [np.full((48, 64, 3), 20 * i, np.uint8) for i in range(6)]
    write_video(tmp_path / "v.avi", frames, size=(64, 48))
    got = prof.read_frames(str(tmp_path / "v.avi"), start=3, count=10)
    assert len(got) == 4 and abs(float(got[0].mean()) - 40) < 8  # frame 3 has value 40 (lossy codec)


@pytest.mark.parametrize("argv, message", [
    (["--video", "{dir}/missing.mp4", "--init", "1,2,3,4"], "video not found"),
    (["--video", "{dir}/notes.txt", "--init", "1,2,3,4"], "is text"),
    (["--video", "{dir}/v.avi"], "--video needs --init"),
    (["--video", "{dir}/v.avi", "--init", "1,2,3"], "--init must be four numbers"),
    (["--video", "{dir}/v.avi", "--init", "1,2,3,4", "--start-frame", "6"], "fewer than 2 frames"),
    (["--video", "{dir}/v.avi", "--init", "1,2,3,4", "--budget", "2"], "budget must be in (0, 1]"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, message):
    write_video(tmp_path / "v.avi", [np.zeros((48, 64, 3), np.uint8)] * 6, size=(64, 48))
    (tmp_path / "notes.txt").write_text("not a video\n")
    with pytest.raises(SystemExit) as e:
        prof.main([a.format(dir=tmp_path) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and message in err[0]


def test_stage_times_cover_the_frame_and_restore_the_tracker():
    torch.manual_seed(0)
    trk = DiMPTracker(SiamNet(TINY).eval(), threads=1)
    total, ms = prof.time_stages(trk, _frames(4), (40, 30, 24, 20), passes=1)
    assert total > 0 and ms["backbone (incl. tensor input)"] > 0
    assert {"online filter: apply (FFT)", "scale filter: estimate", "peak + candidates"} <= set(ms)
    assert abs(sum(ms.values()) - total) < 1e-6  # "other" closes the sum: nothing counted twice
    assert "_embed" not in vars(trk) and "estimate" not in vars(trk.scale_filter)  # wrappers removed
    from tracker import crops
    assert crops.scale_crops.__name__ == "scale_crops"
