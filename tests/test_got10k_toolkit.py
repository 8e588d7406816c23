"""b2track under the got10k toolkit: its OTB and GOT-10k experiments run a B2Tracker, and their
reports agree with ``track-eval score`` on the very result files they wrote.

The two scorers share the thresholds (IoU > 0, 0.05, ..., 1 and centre error <= 0..50 px), the
centre (x + (w-1)/2) and per-sequence averaging; they differ only on frames without a valid
ground truth (OTB: a non-positive value). got10k counts such a frame a precision miss (its centre
error to a zero box is large), the OTB toolkit, and so ``track-eval score``'s default ``otb``
convention, a precision hit; ``--convention lasot`` counts it a miss as got10k does. Success
treats it as a failure in both. got10k builds its IoU thresholds with linspace, which differs
from k/20 in the last bit at a few thresholds: only an IoU exactly at such a threshold could
score differently. test_invalid_frames pins that difference down.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")  # the toolkit's report draws plots; no display here
pytest.importorskip("got10k", reason='got10k toolkit not installed: pip install -e ".[got10k]"')

from got10k.experiments import ExperimentOTB  # noqa: E402
from got10k.trackers import Tracker  # noqa: E402

from eval.datasets.otb import load_otb_frames  # noqa: E402
from eval.got10k_adapter import B2Tracker, FolderExperimentOTB  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FRAMES = 20
SEQS = ("Crossing", "Skiing")


def _otb_folder(dst: Path, shared: Path, seqs=SEQS, frames=FRAMES) -> Path:
    """The first `frames` frames of real OTB sequences, in OTB layout (<Seq>/img/0001.jpg, groundtruth_rect.txt)."""
    for name in seqs:
        src = shared / "data" / "sequences" / "otb" / name
        (dst / name / "img").mkdir(parents=True)
        for i in range(1, frames + 1):
            shutil.copy(src / "img" / f"{i:04d}.jpg", dst / name / "img" / f"{i:04d}.jpg")
        lines = src.joinpath("groundtruth_rect.txt").read_text().splitlines()[:frames]
        (dst / name / "groundtruth_rect.txt").write_text("\n".join(lines) + "\n")
    return dst


def _score(anno: Path, results: Path, convention: str) -> dict:
    run = subprocess.run([sys.executable, "-m", "eval.cli", "score", "--dataset", "otb", "--anno", str(anno),
                          "--results", str(results), "--convention", convention, "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)["trackers"]


def test_otb_experiment_runs_b2track_and_scores_like_track_eval(shared_dir, tmp_path):
    root = _otb_folder(tmp_path / "otb", shared_dir)
    tracker = B2Tracker("dimp", budget=0.3, threads=1)
    assert isinstance(tracker, Tracker)
    assert tracker.name == "dimp_b0.3"
    exp = FolderExperimentOTB(load_otb_frames(root), result_dir=str(tmp_path / "results"),
                              report_dir=str(tmp_path / "reports"))
    assert isinstance(exp, ExperimentOTB)
    exp.run(tracker)  # the toolkit's loop: PIL frames in, boxes and times out
    perf = exp.report([tracker.name])[tracker.name]
    assert (tmp_path / "reports" / "OTB2015" / tracker.name / "success_plots.png").is_file()

    # The toolkit's result files are the boxes b2track gives on the same frames read by OpenCV.
    from tracker.api import create_tracker
    direct = create_tracker("dimp", budget=0.3, threads=1)
    for seq in load_otb_frames(root):
        got = np.loadtxt(tmp_path / "results" / "OTB2015" / tracker.name / f"{seq.name}.txt", delimiter=",")
        direct.init(seq.frame(0), seq.init_box)
        want = np.array([seq.init_box] + [direct.update(seq.frame(i)) for i in range(1, len(seq))])
        np.testing.assert_allclose(got, want, atol=6e-4, rtol=0)  # got10k writes 3 decimals

    ours = _score(root, tmp_path / "results" / "OTB2015", "otb")[tracker.name]
    assert ours["n_seqs"] == len(SEQS)
    # All ground truth valid here: the conventions coincide and the numbers agree to rounding.
    assert ours["auc"] == pytest.approx(perf["overall"]["success_score"], abs=1e-9)
    assert ours["precision"] == pytest.approx(perf["overall"]["precision_score"], abs=1e-9)
    seq_wise = [perf["seq_wise"][s]["success_score"] for s in SEQS]
    assert min(seq_wise) < 0.9 and max(seq_wise) > 0.3  # real tracking, not a copy of the ground truth


def test_invalid_frames(shared_dir, tmp_path):
    """A ground-truth frame of zeros: got10k = ``--convention lasot``; ``otb`` adds it to precision."""
    root = _otb_folder(tmp_path / "otb", shared_dir, seqs=("Crossing",), frames=10)
    gt_file = root / "Crossing" / "groundtruth_rect.txt"
    gt = np.loadtxt(gt_file.read_text().replace(",", " ").splitlines())
    pred = gt + np.array([3.0, -2.0, 1.0, 1.0])  # near the target: within 20 px, IoU ~0.7
    gt[6] = 0  # the target out of view: OTB marks it with zeros
    np.savetxt(gt_file, gt, fmt="%d", delimiter=",")
    results = tmp_path / "results" / "OTB2015" / "fixed"
    results.mkdir(parents=True)
    np.savetxt(results / "Crossing.txt", pred, fmt="%.3f", delimiter=",")

    exp = FolderExperimentOTB(load_otb_frames(root), result_dir=str(tmp_path / "results"),
                              report_dir=str(tmp_path / "reports"))
    perf = exp.report(["fixed"])["fixed"]["overall"]
    lasot = _score(root, results.parent, "lasot")["fixed"]
    otb = _score(root, results.parent, "otb")["fixed"]
    assert perf["precision_score"] == pytest.approx(0.9)  # 9 of 10 frames: the zero frame a miss
    assert lasot["precision"] == pytest.approx(perf["precision_score"], abs=1e-9)
    assert otb["precision"] == pytest.approx(1.0)  # the OTB toolkit's quirk: the zero frame a hit
    for scored in (lasot, otb):
        assert scored["auc"] == pytest.approx(perf["success_score"], abs=1e-9)


def test_got10k_experiment_runs_unchanged_on_a_val_sequence(shared_dir, tmp_path):
    """The toolkit's own ExperimentGOT10k (no subclass) on the real GOT-10k val sample: AO and SR
    as ``track-eval score --dataset got10k`` computes them from the same files."""
    from got10k.experiments import ExperimentGOT10k

    root = shared_dir / "data" / "training" / "got10k_val_sample"
    exp = ExperimentGOT10k(str(root), subset="val", result_dir=str(tmp_path / "results"),
                           report_dir=str(tmp_path / "reports"))
    tracker = B2Tracker("dimp", budget=0.3, threads=1)
    exp.run(tracker)  # deterministic: one repetition instead of three
    runs = sorted((tmp_path / "results" / "GOT-10k" / tracker.name).glob("*/*_[0-9][0-9][0-9].txt"))
    assert [p.name for p in runs] == ["GOT-10k_Val_000001_001.txt"]
    perf = exp.report([tracker.name])[tracker.name]["overall"]
    ours = _score_got10k(root, tmp_path / "results" / "GOT-10k")[tracker.name]
    assert 0.2 < perf["ao"] < 1.0
    assert ours["ao"] == pytest.approx(perf["ao"], abs=1e-9)
    assert ours["sr50"] == pytest.approx(perf["sr"], abs=1e-9)


def _score_got10k(anno: Path, results: Path) -> dict:
    run = subprocess.run([sys.executable, "-m", "eval.cli", "score", "--dataset", "got10k", "--anno", str(anno),
                          "--results", str(results), "--json"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)["trackers"]
