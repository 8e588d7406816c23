"""`track-eval` end to end: runs with OpenCV peers, reports, one-line errors with status 2."""
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from eval.cli import main

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DATA = SHARED / "data"
needs_shared = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data not found at {SHARED}")


def make_sequences(root, names=("Alpha", "Beta"), n=6):
    """OTB-layout sequences with real JPEGs: a textured square moving 2 px per frame."""
    rng = np.random.default_rng(0)
    patch = rng.integers(0, 255, (14, 12, 3), dtype=np.uint8)
    for k, name in enumerate(names):
        (root / name / "img").mkdir(parents=True)
        lines = []
        for i in range(n):
            x, y = 20 + 2 * i, 16 + k
            image = np.full((64, 96, 3), 40, np.uint8)
            image[y:y + 14, x:x + 12] = patch
            cv2.imwrite(str(root / name / "img" / f"{i + 1:04d}.jpg"), image)
            lines.append(f"{x}\t{y}\t12\t14")
        (root / name / "groundtruth_rect.txt").write_text("\n".join(lines) + "\n")
    return root


def fails_cleanly(capsys, argv, *fragments):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("track-eval: error:"), err
    for f in fragments:
        assert f in err[0]
    return err[0]


def test_help_explains_subcommands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for word in ("run", "score", "report", "success AUC", "examples"):
        assert word in out


def test_run_csrt_then_report(tmp_path, capsys):
    data = make_sequences(tmp_path / "seqs")
    results = tmp_path / "results"
    argv = ["run", "--dataset", "otb", "--root", str(data), "--tracker", "csrt",
            "--results", str(results), "--no-progress"]
    assert main(argv) == 0
    assert "2 run, 0 already done, 0 failed" in capsys.readouterr().out
    boxes = np.loadtxt(results / "csrt" / "otb" / "Beta.txt", delimiter=",")
    assert boxes.shape == (6, 4) and (boxes[:, 2:] > 0).all()
    assert main(argv) == 0  # resume: nothing left to do
    assert "0 run, 2 already done" in capsys.readouterr().out
    assert main(["run", "--dataset", "otb", "--root", str(data), "--tracker", "kcf",
                 "--results", str(results), "--no-progress"]) == 0
    out = tmp_path / "report"
    assert main(["report", "--dataset", "otb", "--root", str(data), "--results", str(results),
                 "--out", str(out)]) == 0
    for name in ("success.png", "precision.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (out / "results.md").read_text()
    assert "| csrt |" in table and "| kcf |" in table
    capsys.readouterr()
    assert main(["score", "--dataset", "otb", "--anno", str(data), "--results", str(results),
                 "--json", "--plot", str(tmp_path / "plot.png")]) == 0
    scores = json.loads(capsys.readouterr().out)["trackers"]
    assert set(scores) == {"csrt", "kcf"} and scores["csrt"]["n_seqs"] == 2
    assert (tmp_path / "plot.png").is_file()


@needs_shared
def test_run_on_shared_sequences_with_two_workers(tmp_path, capsys):
    results = tmp_path / "x"
    argv = ["run", "--dataset", "folder", "--root", str(DATA / "sequences"), "--tracker", "csrt",
            "--workers", "2", "--results", str(results), "--max-frames", "3", "--no-progress"]
    assert main(argv) == 0
    files = sorted(p.name for p in (results / "csrt" / "folder").glob("*.txt"))
    assert len(files) == 12 and "bag.txt" in files and "Football1_time.txt" in files
    assert main(["report", "--dataset", "folder", "--root", str(DATA / "sequences"),
                 "--results", str(results), "--out", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "success.png").is_file()


@needs_shared
def test_nanotrack_peer(tmp_path, capsys):
    data = make_sequences(tmp_path / "seqs", names=("Alpha",), n=3)
    fails_cleanly(capsys, ["run", "--dataset", "otb", "--root", str(data), "--tracker",
                           "nanotrack", "--results", str(tmp_path / "r")], "--nanotrack-dir")
    fails_cleanly(capsys, ["run", "--dataset", "otb", "--root", str(data), "--tracker",
                           "nanotrack", "--nanotrack-dir", str(tmp_path), "--results",
                           str(tmp_path / "r")], "ONNX files missing")
    assert main(["run", "--dataset", "otb", "--root", str(data), "--tracker", "nanotrack",
                 "--nanotrack-dir", str(DATA / "peers" / "nanotrack_v2"), "--results",
                 str(tmp_path / "r"), "--no-progress"]) == 0
    boxes = np.loadtxt(tmp_path / "r" / "nanotrack" / "otb" / "Alpha.txt", delimiter=",")
    assert boxes.shape == (3, 4)


def test_our_trackers_missing_module_is_one_line(tmp_path, capsys, monkeypatch):
    data = make_sequences(tmp_path / "seqs", names=("Alpha",), n=2)
    monkeypatch.setitem(sys.modules, "tracker.api", None)  # import fails like a missing module
    fails_cleanly(capsys, ["run", "--dataset", "otb", "--root", str(data), "--tracker", "siamfc",
                           "--budget", "0.3", "--results", str(tmp_path / "r")], "tracker.api")


def test_user_errors_exit_2_with_one_line(tmp_path, capsys):
    fails_cleanly(capsys, ["score", "--dataset", "otb", "--anno", str(tmp_path / "none"),
                           "--results", str(tmp_path)], "not found")
    data = make_sequences(tmp_path / "seqs", names=("Alpha",), n=2)
    (tmp_path / "empty").mkdir()
    fails_cleanly(capsys, ["score", "--dataset", "otb", "--anno", str(data),
                           "--results", str(tmp_path / "empty")], "no tracker results")
    fails_cleanly(capsys, ["score", "--dataset", "otb", "--anno", str(data),
                           "--results", str(tmp_path / "nowhere")], "not found")
    (data / "Alpha" / "groundtruth_rect.txt").write_text("1,2,3,4\n1,2,3,x\n")
    fails_cleanly(capsys, ["score", "--dataset", "otb", "--anno", str(data), "--results",
                           str(tmp_path)], "groundtruth_rect.txt:2:", "non-numeric")
    fails_cleanly(capsys, ["run", "--dataset", "otb", "--root", str(data), "--tracker", "nope",
                           "--results", str(tmp_path / "r")], "invalid choice: 'nope'")
    assert main(["score", "--dataset", "imagenet", "--anno", ".", "--results", "."]) == 2  # argparse: the same
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "invalid choice: 'imagenet'" in err[0]


def test_console_entry_point_has_no_traceback(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "eval", "score", "--dataset", "lasot", "--anno",
                           str(tmp_path / "missing"), "--results", str(tmp_path)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_got10k_scores_include_ao_and_sr(tmp_path, capsys):
    split = tmp_path / "got" / "val"
    gt = "10,10,20,20\n12,10,20,20\n14,10,20,20\n16,10,20,20\n"
    for name in ("a", "b"):
        (split / name).mkdir(parents=True)
        for i in range(4):
            (split / name / f"{i + 1:08d}.jpg").touch()
        (split / name / "groundtruth.txt").write_text(gt)
        (split / name / "absence.label").write_text("0\n0\n0\n1\n")
    (split / "list.txt").write_text("a\nb\n")
    res = tmp_path / "res" / "static" / "got10k"
    res.mkdir(parents=True)
    for name in ("a", "b"):
        (res / f"{name}.txt").write_text("10,10,20,20\n" * 4)
    assert main(["score", "--dataset", "got10k", "--anno", str(tmp_path / "got"), "--results",
                 str(tmp_path / "res"), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)["trackers"]["static"]
    # Scored frames: 2 and 3 (frame 1 skipped, frame 4 absent), IoU 18*20/(800-360) and 16/24.
    ious = [360 / 440, 320 / 480]
    assert got["ao"] == pytest.approx(np.mean(ious))
    assert got["sr50"] == 1.0 and got["sr75"] == pytest.approx(0.5)
    assert set(got) >= {"auc", "precision", "norm_precision", "n_seqs"}


@needs_shared
def test_report_breaks_otb_down_by_attribute(tmp_path, capsys):
    assert main(["report", "--dataset", "otb", "--anno", str(DATA / "otb100_anno"), "--results",
                 str(DATA / "raw_results" / "OTB100"), "--trackers", "SiamFC", "ATOM",
                 "--out", str(tmp_path)]) == 0
    table = (tmp_path / "results.md").read_text()
    assert "| ATOM | 0.6668 | 0.8794 |" in table
    assert "## Success AUC per attribute" in table and "| IV (37) |" in table
    assert "| LR (9) |" in table
    # Per-sequence AUC, against a plain numpy computation of the OTB success AUC.
    assert "## Success AUC per sequence" in table
    gt = np.loadtxt(DATA / "otb100_anno" / "anno" / "Biker.txt", delimiter=",")
    pred = np.loadtxt(DATA / "raw_results" / "OTB100" / "SiamFC" / "Biker.txt", delimiter=",")
    lo = np.maximum(gt[:, :2], pred[:, :2])
    hi = np.minimum(gt[:, :2] + gt[:, 2:], pred[:, :2] + pred[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    iou = inter / (np.prod(gt[:, 2:], axis=1) + np.prod(pred[:, 2:], axis=1) - inter)
    iou[~(gt > 0).all(axis=1)] = -1  # OTB: frames without a valid ground truth (7 in Biker) are failures
    auc = np.mean([(iou > t).mean() for t in np.linspace(0, 1, 21)])
    row = next(line for line in table.splitlines() if line.startswith("| Biker |"))
    header = next(line for line in table.splitlines() if line.startswith("| sequence |"))
    col = [c.strip() for c in header.split("|")].index("SiamFC")
    assert abs(float(row.split("|")[col]) - auc) < 0.0006, (row, auc)


def test_eval_imports_stay_light():
    # The harness must not pull in the model packages (or heavy libraries) at import time.
    code = ("import sys, eval, eval.cli, eval.datasets, eval.metrics, eval.runner, eval.report, "
            "eval.scoring, eval.peers, eval.trackers\n"
            "heavy = {'backbones', 'mixbin', 'tracker', 'torch', 'matplotlib', 'cv2'}\n"
            "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_got10k_test_split_is_not_scored_locally(tmp_path, capsys):
    split = tmp_path / "got" / "test"
    (split / "t1").mkdir(parents=True)
    for i in range(3):
        (split / "t1" / f"{i + 1:08d}.jpg").touch()
    (split / "t1" / "groundtruth.txt").write_text("10,10,20,20\n")
    (split / "list.txt").write_text("t1\n")
    (tmp_path / "res" / "static").mkdir(parents=True)
    (tmp_path / "res" / "static" / "t1.txt").write_text("10,10,20,20\n" * 3)
    fails_cleanly(capsys, ["score", "--dataset", "got10k", "--split", "test", "--anno",
                           str(tmp_path / "got"), "--results", str(tmp_path / "res")],
                  "GOT-10k server")


def test_param_is_for_our_trackers_only_and_must_be_key_value(tmp_path, capsys):
    data = make_sequences(tmp_path / "seqs", names=("Alpha",), n=3)
    fails_cleanly(capsys, ["run", "--dataset", "otb", "--root", str(data), "--tracker", "csrt",
                           "--param", "lost_ratio=0.4", "--results", str(tmp_path / "r")], "our trackers only")
    fails_cleanly(capsys, ["run", "--dataset", "otb", "--root", str(data), "--tracker", "siamfc",
                           "--param", "lost_ratio", "--results", str(tmp_path / "r")], "KEY=VALUE")


@needs_shared
def test_report_compares_trackers_with_a_baseline(tmp_path, capsys):
    assert main(["report", "--dataset", "otb", "--anno", str(DATA / "otb100_anno"), "--results",
                 str(DATA / "raw_results" / "OTB100"), "--trackers", "SiamFC", "ATOM",
                 "--baseline", "SiamFC", "--out", str(tmp_path)]) == 0
    lines = (tmp_path / "results.md").read_text().splitlines()
    auc = {name: float(next(l for l in lines if l.startswith(f"| {name} | 0.")).split("|")[2])
           for name in ("SiamFC", "ATOM")}
    row = [c.strip() for c in next(l for l in lines if l.startswith("| ATOM | +")).split("|")]
    mean = float(row[2])
    lo, hi = (float(v) for v in row[3].strip("[]").split(","))
    assert abs(mean - (auc["ATOM"] - auc["SiamFC"])) < 0.0011  # mean of differences = difference of means
    assert 0 < lo < mean < hi  # 100 sequences: ATOM is ahead beyond the bootstrap's spread
    wins, ties, losses = (int(v) for v in row[4].split("/"))
    assert wins + ties + losses == int(row[5]) == 100 and wins > losses
    capsys.readouterr()
    fails_cleanly(capsys, ["report", "--dataset", "otb", "--anno", str(DATA / "otb100_anno"), "--results",
                           str(DATA / "raw_results" / "OTB100"), "--trackers", "SiamFC", "--baseline", "ECO",
                           "--out", str(tmp_path)], "--baseline 'ECO' is not among the scored trackers")


@needs_shared
def test_report_averages_runs_into_one_row_and_compares_against_it(tmp_path, capsys):
    args = ["report", "--dataset", "otb", "--anno", str(DATA / "otb100_anno"), "--results",
            str(DATA / "raw_results" / "OTB100")]
    assert main([*args, "--trackers", "SiamFC", "ATOM", "MDNet", "--out", str(tmp_path / "apart")]) == 0
    assert main([*args, "--trackers", "MDNet", "--average", "both=SiamFC,ATOM", "--baseline", "both",
                 "--out", str(tmp_path / "avg")]) == 0
    capsys.readouterr()

    def auc_rows(folder):
        lines = (tmp_path / folder / "results.md").read_text().splitlines()
        return {l.split("|")[1].strip(): float(l.split("|")[2]) for l in lines if l.count("|") > 5 and "| 0." in l[:40]}

    apart, avg = auc_rows("apart"), auc_rows("avg")
    assert set(avg) == {"both", "MDNet"}  # the members are reported only as their average
    # AUC is linear in the success curve: the mean curve's AUC is the mean of the two AUCs
    assert abs(avg["both"] - (apart["SiamFC"] + apart["ATOM"]) / 2) < 0.0011
    row = next(l for l in (tmp_path / "avg" / "results.md").read_text().splitlines() if l.startswith(("| MDNet | +", "| MDNet | -")))
    assert abs(float(row.split("|")[2]) - (avg["MDNet"] - avg["both"])) < 0.0011
    fails_cleanly(capsys, [*args, "--trackers", "SiamFC", "--average", "both=SiamFC,Nonesuch", "--out",
                           str(tmp_path / "x")], "Nonesuch")


@pytest.mark.parametrize("workers, threads, expected", [(2, None, "split"), (1, None, None), (2, 3, 3)])
def test_workers_share_the_cores_unless_threads_are_given(tmp_path, monkeypatch, workers, threads, expected):
    from eval import trackers

    seen = {}

    def factory(name, **kw):
        seen.update(kw)
        raise KeyboardInterrupt  # stop before any tracking

    monkeypatch.setattr(trackers, "make_factory", factory)
    argv = ["run", "--dataset", "otb", "--root", str(tmp_path), "--tracker", "siamfc", "--results",
            str(tmp_path / "r"), "--workers", str(workers)] + (["--threads", str(threads)] if threads else [])
    with pytest.raises(KeyboardInterrupt):
        main(argv)
    if expected == "split":
        expected = max(1, (os.cpu_count() or 1) // workers)
    assert seen["threads"] == expected
