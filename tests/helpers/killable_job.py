"""Run one of the project's long jobs as a child process that a test can SIGKILL mid-run.

    python tests/helpers/killable_job.py DELAY JOB ARG...

JOB is ``train`` (tools/train_siamfc.py), ``mixbin`` (the mixbin CLI),
``track-eval`` (the track-eval CLI) or ``bench`` (tools/bench_strategies.py);
ARG... is its command line, unchanged. Two things are added, and nothing in
the job itself is replaced: the tests' toy backbone is registered (so jobs
run in seconds), and reading a training pair or a video frame first sleeps
DELAY seconds, so that a job lasts long enough to be killed between its first
finished unit and its end whatever the machine's speed. The sleep changes no
result: the real read follows it.

With KILLABLE_DIE_WRITING=NAME in the environment, the job SIGKILLs itself in
the middle of writing the first file whose name starts with NAME (so NAME.tmp
too): half the bytes are on disk, as after a kill at the worst moment.
"""
import io
import os
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for p in (str(ROOT / "tests"), str(ROOT)):
    if p not in sys.path:
        sys.path.insert(0, p)


def run(job: str, argv: list[str]) -> None:
    """The job's own entry point on ``argv``; a failure exits with its status, as on the command line."""
    if job == "mixbin":
        from mixbin.cli import main
        main(argv)
    elif job == "track-eval":
        from eval.cli import main
        rc = main(argv)
        if rc:
            sys.exit(rc)
    else:
        from tool_import import load_tool
        load_tool({"train": "train_siamfc", "bench": "bench_strategies"}[job]).main(argv)


def _slowed(method, delay: float):
    def slow(self, *args, **kwargs):
        time.sleep(delay)
        return method(self, *args, **kwargs)
    return slow


def prepare(job: str, delay: float) -> None:
    """Register the toy backbone (jobs that build a network) and slow the job's reads by ``delay``."""
    if job == "track-eval":
        from eval.sequence import Sequence
        Sequence.frame = _slowed(Sequence.frame, delay)
    else:
        import test_mixbin_toy  # noqa: F401  (registers "mixbin-tiny")
        from tracker.train.data.shards import ShardDataset
        ShardDataset.__getitem__ = _slowed(ShardDataset.__getitem__, delay)


def _die_half_written(write, flush, data) -> None:
    write(data[:len(data) // 2])
    flush()
    os.kill(os.getpid(), signal.SIGKILL)


def die_while_writing(name: str) -> None:
    """SIGKILL this process half-way through writing a file named ``name``* (text, JSON or torch.save)."""
    import builtins

    import torch

    def hit(file) -> bool:
        return isinstance(file, (str, os.PathLike)) and Path(file).name.startswith(name)

    real_open, real_save = io.open, torch.save

    def open_(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        if hit(file) and any(c in mode for c in "wax"):
            write, flush = f.write, f.flush
            f.write = lambda data: _die_half_written(write, flush, data)
        return f

    def save(obj, f, *args, **kwargs):
        if not hit(f):
            return real_save(obj, f, *args, **kwargs)
        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        with real_open(f, "wb") as out:
            _die_half_written(out.write, out.flush, buf.getvalue())

    builtins.open = io.open = open_
    torch.save = save


# Spawned worker processes (track-eval --workers N) run this file as "__mp_main__", with the
# parent's argv: they need the same pace (and backbone) as the parent.
if __name__ in ("__main__", "__mp_main__"):
    prepare(sys.argv[2], float(sys.argv[1]))
    if os.environ.get("KILLABLE_DIE_WRITING"):
        die_while_writing(os.environ["KILLABLE_DIE_WRITING"])
    if __name__ == "__main__":
        run(sys.argv[2], sys.argv[3:])
