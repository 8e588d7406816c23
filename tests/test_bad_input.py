"""Bad input across the three CLIs, as a user meets it: each case runs the real command in its own process
and must end with exit status 2, exactly one line on stderr (no traceback, no usage dump, no library
chatter), and leave nothing that passes for finished output (a result file under its final name, a
mixbin --out folder with its model.pt / spec.json marker).

A full disk is simulated two ways: /dev/full where the CLI writes a named file, and a per-process
file-size limit (RLIMIT_FSIZE, which fails a write with EFBIG) where it writes into a folder.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from test_eval_cli import make_sequences

from backbones import Spec
from tests.helpers.synthetic import TINY
from tests.helpers.threads import one_thread  # noqa: F401  (autouse fixture)

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or not os.path.exists("/dev/full"),
                                reason="forks a warm interpreter per command and writes to /dev/full (Linux)")

N_FRAMES = 12
INIT = "20,30,30,30"


# -- shared inputs: built once -------------------------------------------------------------------

def _tiny_video(path, fourcc: str, n: int) -> None:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 25.0, (160, 120))
    assert w.isOpened(), f"OpenCV cannot write {fourcc}"
    for i in range(n):
        f = np.full((120, 160, 3), 60, np.uint8)
        f[30:60, 20 + 3 * i:50 + 3 * i] = (40, 40, 220)
        w.write(f)
    w.release()


def _pairs(n, seed):
    """SiamFC pairs at the tiny backbone's input sizes (127 / 255); values do not matter here."""
    g = torch.Generator().manual_seed(seed)
    return {"z": torch.randint(0, 255, (n, 3, 127, 127), dtype=torch.uint8, generator=g),
            "x": torch.randint(0, 255, (n, 3, 255, 255), dtype=torch.uint8, generator=g),
            "target": torch.zeros(n, 2), "neg": torch.zeros(n, dtype=torch.bool)}


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    from backbones.resnet import ResNet16
    from tracker.model import SiamNet
    from tracker.zoo import save_model

    d = tmp_path_factory.mktemp("bad_input")
    _tiny_video(d / "clip.mp4", "mp4v", N_FRAMES)
    torch.manual_seed(0)
    fp = Spec.uniform(TINY, "fp")
    save_model(d / "fp.pt", SiamNet(TINY).eval(), fp, {"note": "random weights: I/O is under test"})
    wide = SiamNet(TINY)
    wide.backbone = ResNet16(width=0.25)  # same unit names, twice the channels
    save_model(d / "wrong_shapes.pt", wide, fp)
    zoo = d / "zoo"
    zoo.mkdir()
    (zoo / "fp.pt").write_bytes((d / "fp.pt").read_bytes())
    (zoo / "manifest.json").write_text(json.dumps({"format": "b2track-zoo/1", "entries": [
        {"name": "tiny-fp", "file": "fp.pt", "backbone": TINY, "budget": 1.0}]}))
    make_sequences(d / "seqs", names=("Alpha",), n=4)
    (d / "results" / "static").mkdir(parents=True)
    (d / "results" / "static" / "Alpha.txt").write_text("20,16,12,14\n" * 4)
    (d / "data").mkdir()
    torch.save(_pairs(4, 0), d / "data" / "train.pt")
    torch.save(_pairs(2, 1), d / "data" / "val.pt")
    fp.save(d / "spec.json")
    return d


# -- one warm interpreter forks every command ------------------------------------------------------

@pytest.fixture(scope="module")
def cli(assets):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT), B2TRACK_ZOO=str(assets / "zoo"),
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    server = subprocess.Popen([sys.executable, "-m", "tests.helpers.cli_server"], cwd=ROOT, env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def run(prog, argv, cwd, fsize=None):
        server.stdin.write(json.dumps({"prog": prog, "argv": argv, "cwd": str(cwd), "fsize": fsize}) + "\n")
        server.stdin.flush()
        line = server.stdout.readline()
        assert line, f"the CLI server died (exit {server.poll()})"
        return json.loads(line)

    yield run
    server.stdin.close()
    server.wait(timeout=30)


# -- the table ----------------------------------------------------------------------------------

@dataclass
class Case:
    id: str
    prog: str
    argv: list  # {a} = the shared inputs' folder, {d} = this case's own folder
    says: str  # the error line names what went wrong
    make: Callable | None = None  # make(d, a): writes this case's bad input into d
    absent: tuple = ()  # paths under d that must not exist afterwards (partial output)
    fsize: int | None = None  # cap on any file the command writes
    xfail: str | None = None

    def param(self):
        marks = [pytest.mark.xfail(strict=True, reason=self.xfail)] if self.xfail else []
        return pytest.param(self, id=self.id, marks=marks)


def write(name, content):
    """make(): a file in the case folder, from bytes, text, or a callable(path, shared folder)."""
    def make(d, a):
        p = d / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content(p, a)
        elif isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
    return make


def first_bytes(fraction):
    return lambda p, a: p.write_bytes((a / "clip.mp4").read_bytes()[:int(fraction * (a / "clip.mp4").stat().st_size)])


def seqs_with_gt(text):
    """make(): a copy of the one-sequence OTB folder whose ground truth is ``text``."""
    def make(d, a):
        make_sequences(d / "seqs", names=("Alpha",), n=4)
        (d / "seqs" / "Alpha" / "groundtruth_rect.txt").write_text(text)
    return make


def spec_with(**change):
    def content(p, a):
        s = json.loads((a / "spec.json").read_text())
        for k, v in change.items():
            if k == "units":
                s["units"].update(v)
            else:
                s[k] = v
        p.write_text(json.dumps(s))
    return content


def results_with(content):
    def make(d, a):
        write("results/static/Alpha.txt", content)(d, a)
    return make


def read_only_folder(d, a):
    """make(): d/ro, a folder nobody may write in; root writes anyway (the 'afile' cases cover root)."""
    if os.geteuid() == 0:
        pytest.skip("root ignores folder permissions")
    (d / "ro").mkdir()
    (d / "ro").chmod(0o555)


RANDOM = bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8))
A_FILE = write("afile", "a regular file where a folder is expected\n")
GT_OK = "20\t16\t12\t14\n22\t16\t12\t14\n24\t16\t12\t14\n26\t16\t12\t14\n"

TRACK = ["--init", INIT, "--tracker", "siamfc", "--threads", "1", "--max-frames", "2"]
TRACK_VIDEO = ["--video", "{d}/in.mp4", *TRACK]  # model: the zoo's (B2TRACK_ZOO), as a user runs it
TRACK_MODEL = ["--video", "{a}/clip.mp4", *TRACK, "--model"]
TRACK_INIT_FILE = ["--video", "{a}/clip.mp4", "--tracker", "siamfc", "--threads", "1", "--max-frames", "2",
                   "--model", "{a}/fp.pt", "--init-file"]
SCORE = ["score", "--dataset", "otb", "--anno", "{a}/seqs", "--results", "{a}/results"]
SCORE_GT = ["score", "--dataset", "otb", "--anno", "{d}/seqs", "--results", "{a}/results"]  # the case's ground truth
SCORE_RESULTS = ["score", "--dataset", "otb", "--anno", "{a}/seqs", "--results", "{d}/results"]  # its results
RUN = ["run", "--dataset", "otb", "--root", "{a}/seqs", "--results", "{d}/results", "--no-progress"]
RUN_GT = ["run", "--dataset", "otb", "--root", "{d}/seqs", "--results", "{d}/results", "--no-progress"]
REPORT = ["report", "--dataset", "otb", "--anno", "{a}/seqs", "--results", "{a}/results"]
MIX = ["--data", "{a}/data", "--batch-size", "2", "--val-batches", "1", "--fp32", "--no-progress", "--threads", "1"]
SEARCH = ["search", "--strategy", "random", "--teacher", "{a}/fp.pt", *MIX]
FINETUNE = ["finetune", "--spec", "{a}/spec.json", "--teacher", "{a}/fp.pt", "--steps", "1", *MIX]
SEARCH_DONE = ("out/spec.json", "out/model.pt")
RESULT = ("results/csrt/otb/Alpha.txt",)
# backbones/files.atomic_save (being rewritten; not changed here): on a full disk torch.save raises a
# RuntimeError ("basic_ios::clear: iostream error"), not an OSError, and it reaches the user as a traceback.
CASES = [
    # track: the video
    Case("track-video-truncated-mp4", "track", TRACK_VIDEO, "cannot open video", write("in.mp4", first_bytes(0.5))),
    Case("track-video-zero-frames", "track", ["--video", "{d}/in.avi", *TRACK], "gives no frames",
         write("in.avi", lambda p, a: _tiny_video(p, "MJPG", 0))),
    Case("track-video-is-text", "track", TRACK_VIDEO, "is text", write("in.mp4", GT_OK * 100)),
    Case("track-video-empty-file", "track", TRACK_VIDEO, "cannot open video", write("in.mp4", b"")),
    Case("track-video-random-bytes", "track", TRACK_VIDEO, "cannot open video", write("in.mp4", RANDOM)),
    # track: the model
    Case("track-model-empty-file", "track", [*TRACK_MODEL, "{d}/m.pt"], "m.pt", write("m.pt", b"")),
    Case("track-model-random-bytes", "track", [*TRACK_MODEL, "{d}/m.pt"], "m.pt", write("m.pt", RANDOM)),
    Case("track-model-wrong-shapes", "track", [*TRACK_MODEL, "{a}/wrong_shapes.pt"], "weights do not fit"),
    # track: the box, the budget
    Case("track-init-nan", "track", ["--video", "{a}/clip.mp4", "--init", "nan,30,30,30", "--model", "{a}/fp.pt"],
         "--init must be four numbers"),
    Case("track-init-negative-size", "track", ["--video", "{a}/clip.mp4", "--init", "20,30,-30,30",
                                               "--model", "{a}/fp.pt"], "zero or negative size"),
    Case("track-budget-negative", "track", ["--video", "{a}/clip.mp4", "--init", INIT, "--budget", "-0.3"],
         "--budget must be in (0, 1]"),
    Case("track-budget-nan", "track", ["--video", "{a}/clip.mp4", "--init", INIT, "--budget", "nan"],
         "--budget must be in (0, 1]"),
    Case("track-backbone-not-in-zoo", "track", ["--video", "{a}/clip.mp4", "--init", INIT, "--backbone", "nonesuch"],
         "no zoo model with backbone 'nonesuch'"),
    # track: several targets (--init repeated, --init-file)
    Case("track-preset-unknown", "track", ["--video", "{a}/clip.mp4", *TRACK, "--preset", "nonesuch"],
         "unknown SiamFCParams preset"),
    Case("run-preset-unknown", "track-eval", [*RUN, "--tracker", "dimp", "--preset", "nonesuch"],
         "unknown DiMPParams preset"),
    Case("run-preset-for-a-peer", "track-eval", [*RUN, "--tracker", "csrt", "--preset", "fast"],
         "apply to our trackers only"),
    Case("track-init-file-missing", "track", [*TRACK_INIT_FILE, "{d}/none.txt"], "--init-file not found"),
    Case("track-init-file-empty", "track", [*TRACK_INIT_FILE, "{d}/b.txt"], "has no boxes", write("b.txt", "")),
    Case("track-init-file-only-comments", "track", [*TRACK_INIT_FILE, "{d}/b.txt"], "has no boxes",
         write("b.txt", "# x,y,w,h\n\n")),
    Case("track-init-file-three-numbers", "track", [*TRACK_INIT_FILE, "{d}/b.txt"], "line 2 must be four numbers",
         write("b.txt", INIT + "\n20,30,30\n")),
    Case("track-init-file-negative-size", "track", [*TRACK_INIT_FILE, "{d}/b.txt"], "line 1 box has zero or negative",
         write("b.txt", "20,30,-30,30\n")),
    Case("track-init-file-box-outside", "track", [*TRACK_INIT_FILE, "{d}/b.txt"], "outside the 160x120 frame",
         write("b.txt", INIT + "\n500,30,30,30\n")),
    Case("track-init-file-random-bytes", "track", [*TRACK_INIT_FILE, "{d}/b.txt"], "not a text file",
         write("b.txt", RANDOM)),
    Case("track-init-file-is-a-folder", "track", [*TRACK_INIT_FILE, "{d}"], "is a folder"),
    Case("track-init-and-init-file", "track", [*TRACK_INIT_FILE, "{d}/b.txt", "--init", INIT], "not allowed with",
         write("b.txt", INIT + "\n")),
    Case("track-second-init-bad", "track", [*TRACK_MODEL, "{a}/fp.pt", "--init", "1,2,3"], "--init must be four numbers"),
    Case("track-targets-output-under-a-file", "track", [*TRACK_MODEL, "{a}/fp.pt", "--init", "60,30,30,30", "--output",
                                                        "{d}/afile/boxes.txt"], "Not a directory", A_FILE),
    # track: where the output goes
    Case("track-output-under-a-file", "track", [*TRACK_MODEL, "{a}/fp.pt", "--output", "{d}/afile/boxes.txt"],
         "Not a directory", A_FILE),
    Case("track-output-disk-full", "track", [*TRACK_MODEL, "{a}/fp.pt", "--output", "/dev/full"],
         "No space left"),
    Case("track-save-video-under-a-file", "track", [*TRACK_MODEL, "{a}/fp.pt", "--save-video",
                                                    "{d}/afile/out.avi"], "afile", A_FILE),
    Case("track-save-video-unknown-container", "track", [*TRACK_MODEL, "{a}/fp.pt", "--save-video", "{d}/out.xyz"],
         "must end in one of", absent=("out.xyz",)),

    # track-eval score: annotations and results
    Case("score-anno-nan", "track-eval", SCORE_GT, "NaN", seqs_with_gt(GT_OK.replace("22\t", "nan\t"))),
    Case("score-anno-wrong-column-count", "track-eval", SCORE_GT, "expected 4 values",
         seqs_with_gt(GT_OK.replace("\t14\n", "\n"))),
    Case("score-anno-empty-file", "track-eval", SCORE_GT, "empty", seqs_with_gt("")),
    Case("score-anno-random-bytes", "track-eval", SCORE_GT, "not a text file",
         lambda d, a: (seqs_with_gt("")(d, a), (d / "seqs/Alpha/groundtruth_rect.txt").write_bytes(RANDOM))),
    Case("score-results-random-bytes", "track-eval", SCORE_RESULTS, "not a text file",
         results_with(RANDOM)),
    Case("score-results-wrong-column-count", "track-eval", SCORE_RESULTS, "expected 4 values",
         results_with("1,2,3\n" * 4)),
    Case("score-plot-disk-full", "track-eval", [*SCORE, "--plot", "/dev/full"],
         "cannot write /dev/full: No space left"),
    Case("score-plot-unknown-format", "track-eval", [*SCORE, "--plot", "{d}/plot.txt"],
         "unknown image format", absent=("plot.txt",)),
    # track-eval run
    Case("run-anno-negative-size", "track-eval", [*RUN_GT, "--tracker", "csrt"],
         "negative", seqs_with_gt(GT_OK.replace("20\t16\t12", "20\t16\t-12")), absent=RESULT),
    Case("run-anno-nan", "track-eval", [*RUN_GT, "--tracker", "csrt"], "NaN",
         seqs_with_gt(GT_OK.replace("20\t", "nan\t")), absent=RESULT),
    Case("run-model-wrong-shapes", "track-eval", [*RUN, "--tracker", "siamfc", "--model", "{a}/wrong_shapes.pt"],
         "weights do not fit", absent=("results/siamfc/otb/Alpha.txt",)),
    Case("run-model-random-bytes", "track-eval", [*RUN, "--tracker", "siamfc", "--model", "{d}/m.pt"], "m.pt",
         write("m.pt", RANDOM), absent=("results/siamfc/otb/Alpha.txt",)),
    Case("run-budget-out-of-range", "track-eval", [*RUN, "--tracker", "siamfc", "--budget", "1.5"], "(0, 1]",
         absent=("results",)),
    Case("run-backbone-not-in-zoo", "track-eval", [*RUN, "--tracker", "siamfc", "--backbone", "nonesuch"],
         "no zoo model with backbone 'nonesuch'", absent=("results",)),
    Case("run-results-under-a-file", "track-eval", [*RUN, "--tracker", "csrt", "--results",
                                                    "{d}/afile/results"], "afile", A_FILE),
    Case("run-results-read-only", "track-eval", [*RUN, "--tracker", "csrt", "--results", "{d}/ro/results"],
         "Permission denied", read_only_folder),
    Case("run-disk-full", "track-eval", [*RUN, "--tracker", "csrt"], "File too large", absent=RESULT, fsize=64),
    # track-eval report
    Case("report-out-under-a-file", "track-eval", [*REPORT, "--out", "{d}/afile/report"], "afile", A_FILE),
    Case("report-average-without-a-name", "track-eval", [*REPORT, "--out", "{d}/report", "--average", "csrt"],
         "--average expects NAME=T1,T2,..."),
    Case("report-average-unknown-run", "track-eval", [*REPORT, "--out", "{d}/report", "--average", "m=nonesuch"],
         "no results for nonesuch"),
    Case("report-disk-full", "track-eval", [*REPORT, "--out", "{d}/report"], "File too large",
         absent=("report/success.png", "report/precision.png", "report/results.md"), fsize=2048),

    # mixbin summary: specs and checkpoints
    Case("summary-spec-empty-file", "mixbin", ["summary", "--spec", "{d}/s.json"], "not valid JSON",
         write("s.json", "")),
    Case("summary-spec-random-bytes", "mixbin", ["summary", "--spec", "{d}/s.json"], "not valid JSON",
         write("s.json", RANDOM)),
    Case("summary-spec-unknown-unit", "mixbin", ["summary", "--spec", "{d}/s.json"], "unknown unit",
         write("s.json", spec_with(units={"layer9.conv1": "fp"}))),
    Case("summary-spec-unknown-mode", "mixbin", ["summary", "--spec", "{d}/s.json"], "mode must be",
         write("s.json", spec_with(units={"conv1": "ternary"}))),
    Case("summary-spec-budget-disagrees", "mixbin", ["summary", "--spec", "{d}/s.json"], "does not match",
         write("s.json", spec_with(budget=0.3))),
    Case("summary-spec-unknown-backbone", "mixbin", ["summary", "--spec", "{d}/s.json"], "unknown backbone",
         write("s.json", spec_with(backbone="resnet99"))),
    Case("summary-checkpoint-empty-file", "mixbin", ["summary", "--spec", "{d}/m.pt"], "m.pt", write("m.pt", b"")),
    Case("summary-checkpoint-random-bytes", "mixbin", ["summary", "--spec", "{d}/m.pt"], "m.pt",
         write("m.pt", RANDOM)),
    # mixbin search
    Case("search-budget-negative", "mixbin", [*SEARCH, "--budget", "-0.2", "--out", "{d}/out"], "(0, 1]",
         absent=("out",)),
    Case("search-budget-nan", "mixbin", [*SEARCH, "--budget", "nan", "--out", "{d}/out"], "(0, 1]",
         absent=("out",)),
    Case("search-teacher-empty-file", "mixbin", [*SEARCH, "--budget", "0.5", "--teacher", "{d}/m.pt",
                                                 "--out", "{d}/out"], "m.pt", write("m.pt", b""), absent=("out",)),
    Case("search-teacher-random-bytes", "mixbin", [*SEARCH, "--budget", "0.5", "--teacher", "{d}/m.pt",
                                                   "--out", "{d}/out"], "m.pt", write("m.pt", RANDOM),
         absent=("out",)),
    Case("search-teacher-wrong-shapes", "mixbin", [*SEARCH, "--budget", "0.5", "--teacher", "{a}/wrong_shapes.pt",
                                                   "--out", "{d}/out"], "do not fit", absent=SEARCH_DONE),
    Case("search-data-random-bytes", "mixbin", [*SEARCH, "--budget", "0.5", "--data", "{d}/data",
                                                "--out", "{d}/out"], "train.pt", write("data/train.pt", RANDOM),
         absent=("out",)),
    Case("search-out-under-a-file", "mixbin", [*SEARCH, "--budget", "0.5", "--out", "{d}/afile/out"], "afile",
         A_FILE),
    Case("search-out-read-only", "mixbin", [*SEARCH, "--budget", "0.5", "--out", "{d}/ro/out"], "not writable",
         read_only_folder),
    Case("search-disk-full-log", "mixbin", [*SEARCH, "--budget", "0.5", "--out", "{d}/out"], "File too large",
         absent=SEARCH_DONE, fsize=64),
    Case("search-disk-full-model", "mixbin", [*SEARCH, "--budget", "0.5", "--out", "{d}/out"], "disk full or file-size limit",
         absent=SEARCH_DONE, fsize=2048),
    # mixbin finetune
    Case("finetune-spec-budget-disagrees", "mixbin", [*FINETUNE, "--spec", "{d}/s.json", "--out", "{d}/out"],
         "does not match", write("s.json", spec_with(budget=0.3)), absent=("out",)),
    Case("finetune-teacher-wrong-shapes", "mixbin", [*FINETUNE, "--teacher", "{a}/wrong_shapes.pt",
                                                     "--out", "{d}/out"], "do not fit", absent=("out/model.pt",)),
    Case("finetune-out-under-a-file", "mixbin", [*FINETUNE, "--out", "{d}/afile/out"], "afile", A_FILE),
    Case("finetune-disk-full-log", "mixbin", [*FINETUNE, "--out", "{d}/out"], "File too large",
         absent=("out/model.pt",), fsize=64),
    Case("finetune-disk-full-checkpoint", "mixbin", [*FINETUNE, "--out", "{d}/out"], "disk full or file-size limit",
         absent=("out/model.pt",), fsize=2048),
]


@pytest.mark.parametrize("case", [c.param() for c in CASES])
def test_bad_input_exits_2_with_one_line_and_no_finished_output(case, cli, assets, tmp_path):
    if case.make:
        case.make(tmp_path, assets)
    argv = [s.format(a=assets, d=tmp_path) for s in case.argv]
    r = cli(case.prog, argv, tmp_path, case.fsize)
    lines = r["stderr"].splitlines()
    seen = f"exit status {r['rc']}, stderr:\n{r['stderr']}"
    assert r["rc"] == 2 and len(lines) == 1, seen
    assert lines[0].startswith(f"{case.prog}: error") and "Traceback" not in r["stderr"], seen
    assert case.says in lines[0], seen
    left = [p for p in case.absent if (tmp_path / p).exists()]
    assert not left, f"partial output left under its final name: {left}"


def test_the_same_commands_succeed_on_good_input(cli, assets, tmp_path):
    """The table's commands are right apart from the one bad input: with good inputs they work."""
    (tmp_path / "two.txt").write_text(INIT + "\n60,30,30,30\n")
    for prog, argv in (("track", [*TRACK_MODEL, "{a}/fp.pt", "--output", "{d}/boxes.txt"]),
                       ("track", [*TRACK_INIT_FILE, "{d}/two.txt", "--output", "{d}/two.txt"]),
                       ("track", ["--video", "{a}/clip.mp4", *TRACK]),
                       ("track-eval", [*RUN, "--tracker", "csrt"]),
                       ("track-eval", [*REPORT, "--out", "{d}/report"]),
                       ("mixbin", ["summary", "--spec", "{a}/spec.json"]),
                       ("mixbin", [*SEARCH, "--budget", "0.5", "--out", "{d}/out"])):
        r = cli(prog, [s.format(a=assets, d=tmp_path) for s in argv], tmp_path)
        assert r["rc"] == 0, (argv, r)
    assert len((tmp_path / "boxes.txt").read_text().splitlines()) == 2
    assert [len((tmp_path / f"two_{i}.txt").read_text().splitlines()) for i in range(2)] == [2, 2]
    assert (tmp_path / "results/csrt/otb/Alpha.txt").is_file()
    assert all((tmp_path / p).is_file() for p in SEARCH_DONE)
