"""Kill and resume: every long job, SIGKILLed after its first finished unit, resumes to the uninterrupted result.

Jobs: FP training (tools/train_siamfc.py), ``mixbin search`` (mixbin and prune), ``mixbin
finetune``, ``track-eval run`` and tools/bench_strategies.py, each on tiny data (the toy
backbone, 16/32-pixel pairs, 8-frame clips) in a child process (tests/helpers/killable_job.py).
The child is killed with SIGKILL, its whole process group at once, as soon as its first
checkpoint / sequence result / table row exists, then the same command is run again in a new
child, while the uninterrupted reference runs the same command in this process. Checked:

(a) the work finished before the kill is kept: the rerun starts from the checkpoint's step
    (not step 0), and skips the sequences and rows already written, leaving their files alone;
(b) the result equals an uninterrupted run of the same command, file by file: tensors with
    torch.equal, text byte for byte, JSON equal once wall-clock fields are dropped (they time
    the run, so no two runs share them) and the output folder's path is factored out;
(c) nothing temporary or half-written is left: no *.tmp / *.part / hidden files, every .pt
    loads with torch.load(weights_only=True), every .json and .jsonl line parses, every
    result .txt parses, every .png is complete.

Two more runs of the search and the fine-tuning die by their own SIGKILL half-way through writing
the file that marks them as done (spec.json, model.pt): the worst moment for a kill.
"""
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

import test_mixbin_toy  # noqa: F401  (registers the toy backbone in this process too)
from tests.helpers.killable_job import run as run_job
from test_eval_cli import make_sequences
from test_mixbin_cli import TINY, pairs

HELPER = Path(__file__).parent / "helpers" / "killable_job.py"
SEQUENCES = ("Alpha", "Beta", "Gamma", "Delta")
N_FRAMES = 8
# Keys that time a run; they differ between any two runs, killed or not.
VOLATILE = {"time", "log_bytes", "wall_time_s", "search_wall_time_s", "finetune_wall_time_s", "bench_wall_time_s",
            "pairs_per_s", "data_wait"}


# -- tiny inputs ------------------------------------------------------------------------

def write_pair_shard(folder: Path, n: int, seed: int) -> None:
    from tracker.train.data.shards import write_shard
    p = pairs(n, seed)
    records = [{"z": p["z"][i].numpy(), "x": p["x"][i].numpy(), "target": p["target"][i].numpy(),
                "box_x": np.array([8.0, 8.0, 16.0, 16.0]), "box_z": np.array([0.0, 0.0, 16.0, 16.0]),
                "neg": False, "src": 0, "index": i} for i in range(n)]
    write_shard(folder / "shard_00000", records)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from backbones import Spec
    from tracker.model import SiamNet
    root = tmp_path_factory.mktemp("inputs")
    write_pair_shard(root / "pairs" / "train", 48, 0)
    write_pair_shard(root / "pairs" / "val", 8, 1)
    torch.manual_seed(0)
    torch.save({"model": SiamNet(TINY).state_dict(), "backbone": TINY, "step": 0}, root / "teacher.pt")
    # A mixed assignment to fine-tune: first and last unit FP, the rest binary.
    units = SiamNet(TINY).backbone.unit_names()
    Spec.build(TINY, {n: "fp" if n in (units[0], units[-1]) else "bin" for n in units},
               provenance={"strategy": "hand-made"}).save(root / "spec.json")
    make_sequences(root / "clips", SEQUENCES, n=N_FRAMES)
    return root


# -- the jobs ---------------------------------------------------------------------------

@dataclass
class Job:
    argv: Callable[[Path, Path], list]  # (inputs, out) -> command line after the job's name
    entry: str  # killable_job.py's JOB
    delay: float  # seconds added to each pair / frame read of the run that gets killed
    first_unit: Callable[[Path], bool]  # out -> is the first unit (checkpoint, sequence, row) there?
    done: Callable[[Path], bool]  # out -> has the job finished (then the kill came too late)?
    snapshot: Callable[[Path], object]  # out -> what was finished at the kill
    kept: Callable[[Path, object, str], None]  # (out, snapshot, rerun's stdout): the finished work survived
    die_writing: str | None = None  # set: not killed from outside, but by itself half-way through writing this file


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def checkpoint_job(entry, argv, ckpt, done_file, delay=0.04):
    """A step loop that checkpoints to out/ckpt and logs every step to out/log.jsonl."""
    def step_records(out, upto=None):
        # Training-step records (validation ones carry val_loss instead of a loss).
        return [r for r in records(out / "log.jsonl") if ("loss" in r or "task_loss" in r)
                and (upto is None or r["step"] <= upto)]

    def snapshot(out):
        step = torch.load(out / ckpt, map_location="cpu", weights_only=True)["step"]
        return step, step_records(out, upto=step)

    def kept(out, snap, stdout):
        step, before = snap
        assert step >= 1
        # The rerun went on from the checkpoint: the records up to it are the first run's, timestamps and all.
        assert step_records(out, upto=step) == before
        # Steps past the checkpoint were run again, and logged once: the resumed run dropped the killed ones.
        steps = [r["step"] for r in step_records(out)]
        assert steps == sorted(set(steps)), steps
        assert sum(r.get("event") == "start" for r in records(out / "log.jsonl")) <= 1

    return Job(argv, entry, delay, lambda out: (out / ckpt).is_file(), lambda out: (out / done_file).exists(),
               snapshot, kept)


def common(i):
    return ["--teacher", i / "teacher.pt", "--data", i / "pairs", "--batch-size", 4, "--val-batches", 1,
            "--fp32", "--no-progress", "--threads", 1]


TRAIN = checkpoint_job(
    "train", lambda i, out: ["--backbone", TINY, "--out", out, "--steps", 16, "--batch-size", 4, "--ckpt-every", 2,
                             "--log-every", 1, "--val-every", 8, "--val-batches", 1, "--warmup-steps", 2,
                             "--workers", 0, "--threads", 1, "--bf16", "false", "--channels-last", "false",
                             "--train-shards", i / "pairs" / "train", "--val-shards", i / "pairs" / "val"],
    "last.pt", "curves.png")

SEARCH = checkpoint_job(
    "mixbin", lambda i, out: ["search", "--strategy", "mixbin", "--budget", 0.3, "--steps", 12, "--out", out,
                              "--set", "ckpt_every=3", "--set", "log_every=1", *common(i)],
    "search.pt", "spec.json")

PRUNE = checkpoint_job(
    "mixbin", lambda i, out: ["search", "--strategy", "prune", "--budget", 0.3, "--steps", 12, "--out", out,
                              "--set", "ckpt_every=3", "--set", "log_every=1", *common(i)],
    "prune.pt", "spec.json")

FINETUNE = checkpoint_job(
    "mixbin", lambda i, out: ["finetune", "--spec", i / "spec.json", "--steps", 10, "--out", out, "--set",
                              "ckpt_every=2", "--set", "log_every=1", "--set", "calib_batches=2", *common(i)],
    "finetune.pt", "model.pt")


def _boxes(out):
    return sorted(p for p in (out / "csrt" / "otb").glob("*.txt") if not p.name.endswith("_time.txt"))


def _eval_snapshot(out):
    files = [f for b in _boxes(out) for f in (b, b.with_name(b.stem + "_time.txt"))]
    return {f.name: (f.read_bytes(), f.stat().st_mtime_ns) for f in files}


def _eval_kept(out, snap, stdout):
    for name, (data, mtime) in snap.items():
        f = out / "csrt" / "otb" / name
        assert f.read_bytes() == data and f.stat().st_mtime_ns == mtime, name
    assert f"{len(snap) // 2} already done" in stdout


TRACK_EVAL = Job(
    lambda i, out: ["run", "--dataset", "otb", "--root", i / "clips", "--tracker", "csrt", "--workers", 2,
                    "--results", out, "--no-progress"],
    "track-eval", 0.1, lambda out: bool(_boxes(out)), lambda out: len(_boxes(out)) == len(SEQUENCES),
    _eval_snapshot, _eval_kept)


def _rows_text(out):
    f = out / "results.jsonl"
    return f.read_text() if f.is_file() else ""


def _bench_kept(out, snap, stdout):
    assert _rows_text(out).startswith(snap)
    started = {line for line in stdout.splitlines() if line.startswith("== ")}
    for row in map(json.loads, snap.splitlines()):
        assert f"== {row['strategy']} b={row['budget_target']} seed={row['seed']}" not in started


BENCH = Job(
    lambda i, out: ["--teacher", i / "teacher.pt", "--data", i / "pairs", "--strategies", "fp", "random",
                    "--budgets", 0.3, "--random-seeds", 0, 1, "--search-steps", 4, "--finetune-steps", 3,
                    "--batch-size", 4, "--val-batches", 1, "--eval-batches", 1, "--threads", 1, "--work", out],
    "bench", 0.02, lambda out: _rows_text(out).endswith("\n"), lambda out: _rows_text(out).count("\n") >= 3,
    _rows_text, _bench_kept)

JOBS = {"train": TRAIN, "mixbin-search": SEARCH, "prune": PRUNE, "finetune": FINETUNE, "track-eval": TRACK_EVAL,
        "bench-strategies": BENCH,
        # Killed at the worst moment: half-way through writing the file that marks the job as done.
        "mixbin-search-dies-writing-spec.json": replace(SEARCH, die_writing="spec.json"),
        "finetune-dies-writing-model.pt": replace(FINETUNE, die_writing="model.pt")}


# -- running and killing ----------------------------------------------------------------

def start(job: Job, inputs: Path, out: Path, delay: float, log: Path,
          die_writing: str | None = None) -> subprocess.Popen:
    cmd = [sys.executable, str(HELPER), str(delay), job.entry, *map(str, job.argv(inputs, out))]
    env = {**os.environ, "OMP_NUM_THREADS": "1", **({"KILLABLE_DIE_WRITING": die_writing} if die_writing else {})}
    with open(log, "w") as fh:
        # A session of its own: the kill takes the job's worker processes too, as a killed terminal would.
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def finish(proc: subprocess.Popen, log: Path, timeout: float = 90) -> str:
    proc.wait(timeout=timeout)
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    return text


def kill_at_first_unit(proc: subprocess.Popen, job: Job, out: Path, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not job.first_unit(out):
        assert proc.poll() is None, f"the job ended before its first unit: {log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, "no first unit in time"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def reap(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# -- comparing and checking output trees -----------------------------------------------

def files_of(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def normalise(obj, out: Path):
    """Drop wall-clock fields and name the output folder <out>, inside any nesting.

    Of a checkpoint's RNG states only torch's is compared: the jobs seed torch, while numpy's
    and Python's global generators start from fresh OS entropy in every process, so they differ
    between any two runs and nothing in the jobs draws from them.
    """
    if isinstance(obj, dict):
        if isinstance(obj.get("rng"), dict):
            obj = {**obj, "rng": {"torch": obj["rng"]["torch"]}}
        return {k: normalise(v, out) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, (list, tuple)):
        return type(obj)(normalise(v, out) for v in obj)
    if isinstance(obj, str):
        return obj.replace(str(out), "<out>")
    return obj


def assert_same(a, b, where: str) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), (where, sorted(set(a) ^ set(b)))
        for k in a:
            assert_same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for k, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{k}]")
    else:
        assert a == b, (where, a, b)


def assert_same_results(ref: Path, got: Path) -> None:
    assert files_of(ref) == files_of(got)
    for rel in sorted(files_of(ref)):
        a, b = ref / rel, got / rel
        if a.suffix == ".pt":
            assert_same(normalise(torch.load(a, weights_only=True), ref),
                        normalise(torch.load(b, weights_only=True), got), rel)
        elif a.suffix == ".json":
            assert_same(normalise(json.loads(a.read_text()), ref), normalise(json.loads(b.read_text()), got), rel)
        elif a.suffix == ".jsonl":
            assert_same(normalise(records(a), ref), normalise(records(b), got), rel)  # each step once
        elif rel.endswith("_time.txt"):  # seconds per frame: only their number is reproducible
            assert len(a.read_text().splitlines()) == len(b.read_text().splitlines()), rel
        elif a.suffix != ".png":  # curves.png: the same data as the log, but a PNG is not byte-stable
            assert a.read_bytes() == b.read_bytes(), rel


def assert_no_broken_files(root: Path) -> None:
    from eval.textio import read_matrix
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(root)
        assert not p.name.startswith(".") and p.suffix not in (".tmp", ".part"), f"left over: {rel}"
        if p.suffix == ".pt":
            torch.load(p, map_location="cpu", weights_only=True)
        elif p.suffix == ".json":
            json.loads(p.read_text())
        elif p.suffix == ".jsonl":
            assert p.read_text().endswith("\n"), f"{rel}: last line cut short"
            records(p)
        elif p.suffix == ".txt":
            m = read_matrix(p, columns=(1,) if p.name.endswith("_time.txt") else (4,), allow_nan=True)
            assert len(m) == N_FRAMES, rel
        elif p.suffix == ".png":
            data = p.read_bytes()
            assert data.startswith(b"\x89PNG") and data.endswith(b"IEND\xaeB`\x82"), f"{rel}: cut short"
        elif p.suffix == ".md":
            assert p.read_text().endswith("\n"), f"{rel}: cut short"


# -- the test ---------------------------------------------------------------------------

def run_reference(job: Job, inputs: Path, out: Path) -> None:
    """The uninterrupted run, here: the same entry point and command line as the child's."""
    threads = torch.get_num_threads()
    try:
        run_job(job.entry, [str(a) for a in job.argv(inputs, out)])
    finally:
        torch.set_num_threads(threads)  # the jobs' --threads 1 must not outlive them


@pytest.mark.parametrize("name", list(JOBS))
def test_sigkill_after_first_unit_then_rerun_matches_uninterrupted_run(name, inputs, tmp_path):
    job = JOBS[name]
    ref_out, out = tmp_path / "ref", tmp_path / "out"
    rerun = None
    if job.die_writing:
        victim = start(job, inputs, out, 0.0, tmp_path / "killed.log", job.die_writing)
    else:
        victim = start(job, inputs, out, job.delay, tmp_path / "killed.log")
    try:
        if job.die_writing:
            victim.wait(timeout=90)
            assert victim.returncode == -signal.SIGKILL, (tmp_path / "killed.log").read_text()[-3000:]
            assert not job.done(out), f"a half-written {job.die_writing} marks the job as done"
        else:
            kill_at_first_unit(victim, job, out, tmp_path / "killed.log")
            assert not job.done(out), "the kill came after the end: nothing left to resume"
        snap = job.snapshot(out)
        # The rerun is undelayed (the delay changes no result); the reference runs alongside it.
        rerun = start(job, inputs, out, 0.0, tmp_path / "rerun.log")
        run_reference(job, inputs, ref_out)
        stdout = finish(rerun, tmp_path / "rerun.log")
    finally:
        reap(victim)
        if rerun is not None:
            reap(rerun)
    job.kept(out, snap, stdout)
    assert_same_results(ref_out, out)
    assert_no_broken_files(out)


def test_a_killed_workers_temporary_goes_while_the_worker_is_still_a_zombie(tmp_path):
    """A killed worker lingers as a zombie until reaped (init reaps orphans late, or never in some
    containers); its half-written temporary must not outlive the rerun that follows."""
    from eval.runner import remove_stale_temporaries
    worker = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while open(f"/proc/{worker.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":  # exited, not reaped
        assert time.monotonic() < deadline
        time.sleep(0.01)
    stale = tmp_path / f".Alpha.txt.{worker.pid}.tmp"
    stale.write_text("10.000,12.0")
    live = tmp_path / f".Beta.txt.{os.getpid()}.tmp"  # this process is alive: its file stays
    live.write_text("10.000,12.0")
    remove_stale_temporaries(tmp_path)
    worker.wait()
    assert not stale.exists() and live.exists()
