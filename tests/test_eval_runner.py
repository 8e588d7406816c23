"""The runner on a tiny synthetic OTB-layout folder with trivial fake trackers."""
import os

import cv2
import numpy as np
import pytest

from eval import runner
from eval.datasets import load_otb

N_FRAMES = 8


def make_otb_folder(root, names=("Alpha", "Beta", "Gamma"), n=N_FRAMES):
    """Real JPEGs: a bright square moving 2 px per frame on a dark background."""
    for k, name in enumerate(names):
        img_dir = root / name / "img"
        img_dir.mkdir(parents=True)
        lines = []
        for i in range(n):
            x, y = 10 + 2 * i + k, 12
            image = np.full((48, 64, 3), 30, np.uint8)
            image[y:y + 12, x:x + 10] = 220
            cv2.imwrite(str(img_dir / f"{i + 1:04d}.jpg"), image)
            lines.append(f"{x},{y},10,12")
        (root / name / "groundtruth_rect.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def otb_folder(tmp_path):
    return make_otb_folder(tmp_path / "otb")


class StaticTracker:
    """Returns the initial box forever; counts how many sequences it was started on."""

    inits = 0

    def init(self, image, box):
        assert image.ndim == 3
        type(self).inits += 1
        self.box = box

    def update(self, image):
        return self.box


class CrashOnBeta(StaticTracker):
    """Fails in the middle of the sequence whose first box starts at x = 11 (Beta)."""

    def update(self, image):
        if self.box[0] == 11:
            raise RuntimeError("simulated tracker crash")
        return self.box


class DieOnBeta(StaticTracker):
    """Kills its own process on Beta, like a segfault in a native tracker would."""

    def update(self, image):
        if self.box[0] == 11:
            os._exit(3)
        return self.box


class InterruptOnBeta(StaticTracker):
    def update(self, image):
        if self.box[0] == 11:
            raise KeyboardInterrupt
        return self.box


def result_lines(path):
    return [line for line in path.read_text().splitlines() if line]


def test_results_written_in_pytracking_layout(otb_folder, tmp_path):
    seqs = load_otb(otb_folder)
    out = tmp_path / "results" / "static" / "otb"
    StaticTracker.inits = 0
    outcomes = runner.run(StaticTracker, seqs, out, progress=False)
    assert [o.status for o in outcomes] == ["done"] * 3
    lines = result_lines(out / "Alpha.txt")
    assert len(lines) == N_FRAMES and lines[0] == "10.000,12.000,10.000,12.000"
    assert np.loadtxt(out / "Beta.txt", delimiter=",").shape == (N_FRAMES, 4)
    times = np.loadtxt(out / "Alpha_time.txt")
    assert times.shape == (N_FRAMES,) and (times >= 0).all()
    assert not list(out.glob(".*"))  # no temporary files left


def test_resume_skips_completed_sequences(otb_folder, tmp_path):
    seqs = load_otb(otb_folder)
    out = tmp_path / "r"
    runner.run(StaticTracker, seqs, out, progress=False)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.txt")}
    (out / "Gamma.txt").unlink()
    StaticTracker.inits = 0
    outcomes = runner.run(StaticTracker, seqs, out, progress=False)
    assert StaticTracker.inits == 1  # only Gamma ran again
    assert sorted(o.status for o in outcomes) == ["done", "skipped", "skipped"]
    for name in ("Alpha.txt", "Beta.txt", "Alpha_time.txt"):
        assert (out / name).stat().st_mtime_ns == stamps[name]
    # A smoke run with fewer frames does not count as complete for a full run.
    runner.run(StaticTracker, seqs, tmp_path / "smoke", max_frames=3, progress=False)
    assert len(result_lines(tmp_path / "smoke" / "Alpha.txt")) == 3
    StaticTracker.inits = 0
    runner.run(StaticTracker, seqs, tmp_path / "smoke", progress=False)
    assert StaticTracker.inits == 3


def test_a_crashing_sequence_leaves_the_others_intact(otb_folder, tmp_path):
    seqs = load_otb(otb_folder)
    out = tmp_path / "r"
    outcomes = {o.name: o for o in runner.run(CrashOnBeta, seqs, out, progress=False)}
    assert outcomes["Beta"].status == "failed"
    assert "simulated tracker crash" in outcomes["Beta"].error
    assert outcomes["Alpha"].status == outcomes["Gamma"].status == "done"
    assert not (out / "Beta.txt").exists() and not (out / "Beta_time.txt").exists()
    assert len(result_lines(out / "Gamma.txt")) == N_FRAMES


def test_interrupt_loses_only_the_sequence_in_flight(otb_folder, tmp_path):
    seqs = load_otb(otb_folder)
    out = tmp_path / "r"
    with pytest.raises(KeyboardInterrupt):
        runner.run(InterruptOnBeta, seqs, out, progress=False)
    assert (out / "Alpha.txt").is_file() and not (out / "Beta.txt").exists()
    StaticTracker.inits = 0
    outcomes = runner.run(StaticTracker, seqs, out, progress=False)
    assert StaticTracker.inits == 2
    assert {o.name: o.status for o in outcomes} == {"Alpha": "skipped", "Beta": "done",
                                                    "Gamma": "done"}


def test_parallel_workers_with_spawn(otb_folder, tmp_path):
    seqs = load_otb(otb_folder)
    out = tmp_path / "r"
    outcomes = runner.run(CrashOnBeta, seqs, out, workers=2, progress=False)
    assert {o.name: o.status for o in outcomes} == {"Alpha": "done", "Beta": "failed",
                                                    "Gamma": "done"}
    assert len(result_lines(out / "Alpha.txt")) == N_FRAMES
    # A dead process's temporary file is cleaned up; a live one's is left alone.
    (out / ".Beta.txt.999999999.tmp").write_text("partial")
    runner.remove_stale_temporaries(out)
    assert not (out / ".Beta.txt.999999999.tmp").exists()


def test_a_dying_worker_fails_only_its_sequence(otb_folder, tmp_path):
    seqs = load_otb(otb_folder)
    out = tmp_path / "r"
    outcomes = {o.name: o for o in runner.run(DieOnBeta, seqs, out, workers=2, progress=False)}
    assert outcomes["Beta"].status == "failed" and "exit code 3" in outcomes["Beta"].error
    assert outcomes["Alpha"].status == outcomes["Gamma"].status == "done"
    assert len(result_lines(out / "Gamma.txt")) == N_FRAMES
