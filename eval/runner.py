"""Running a tracker over sequences and writing raw results, in parallel and resumable.

Layout written (pytracking style): <results>/<tracker>/<dataset>/<seq>.txt with one x,y,w,h line
per frame, and <seq>_time.txt with the seconds each frame took. A sequence's files appear only
when it is complete (temporary file + atomic rename), so after a crash or Ctrl-C only the
sequences in flight are lost and a rerun skips every finished one.

The tracker is given as a factory (a picklable callable returning a fresh object with
init(image, box) and update(image) -> box), because each worker process builds its own.
"""
import multiprocessing as mp
import os
import signal
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import wait as mp_wait
from pathlib import Path

import numpy as np

from .textio import format_boxes, write_atomic

# Frames between updates of the shared progress counter (a lock round trip per frame is waste).
_PROGRESS_EVERY = 5
_counter = None


@dataclass
class SequenceOutcome:
    name: str
    status: str  # "done", "skipped" or "failed"
    frames: int = 0
    seconds: float = 0.0
    error: str = ""


def result_paths(out_dir, name):
    out_dir = Path(out_dir)
    return out_dir / f"{name}.txt", out_dir / f"{name}_time.txt"


def is_complete(out_dir, name, frames=None):
    """Whether a finished result exists; with `frames`, it must also cover that many frames
    (a --max-frames smoke run must not stop a later full run from tracking the rest)."""
    path = result_paths(out_dir, name)[0]
    if not path.is_file():
        return False
    if frames is None:
        return True
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip()) >= frames


def remove_stale_temporaries(out_dir):
    """Delete temporary files left by processes that no longer exist (a killed earlier run)."""
    for p in Path(out_dir).glob(".*.tmp"):
        try:
            pid = int(p.name.rsplit(".", 2)[-2])
        except ValueError:
            continue
        if not _pid_alive(pid):
            p.unlink(missing_ok=True)


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A killed worker stays a zombie until it is reaped, by init for an orphan, which some
    # container inits do seconds late or never; it writes nothing more, so it counts as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS): signal 0 is all there is to go by


def _as_box(value, frame):
    box = np.asarray(value, dtype=np.float64).reshape(-1)
    if box.size != 4:
        raise ValueError(f"update() returned {box.size} values at frame {frame + 1}, "
                         "expected x,y,w,h")
    return box


def track_sequence(tracker, sequence, max_frames=None, on_frame=None):
    """Boxes (N, 4) and per-frame seconds of one tracker over one sequence."""
    n = len(sequence) if max_frames is None else min(len(sequence), max_frames)
    boxes = np.zeros((n, 4))
    times = np.zeros(n)
    x, y, w, h = sequence.init_box
    if not (np.isfinite(sequence.init_box).all() and w > 0 and h > 0):  # no tracker can start from it
        raise ValueError(f"the first ground-truth box {x:g},{y:g},{w:g},{h:g} is not finite or has zero "
                         "or negative size")
    for i in range(n):
        image = sequence.frame(i)
        start = time.perf_counter()
        if i == 0:
            tracker.init(image, tuple(float(v) for v in sequence.init_box))
            boxes[0] = sequence.init_box
        else:
            boxes[i] = _as_box(tracker.update(image), i)
        times[i] = time.perf_counter() - start
        if on_frame is not None:
            on_frame(i)
    return boxes, times


def _count_frame(i):
    """Progress hook in pool workers: a shared counter the parent polls."""
    if _counter is not None and (i + 1) % _PROGRESS_EVERY == 0:
        with _counter.get_lock():
            _counter.value += _PROGRESS_EVERY


def result_texts(factory, sequence, max_frames=None, on_frame=None):
    """The contents of one sequence's two result files, (boxes, times), from a fresh tracker.
    Apart from writing them, so that an executor can track on one machine and write on another."""
    boxes, times = track_sequence(factory(), sequence, max_frames, on_frame)
    return format_boxes(boxes), "".join(f"{t:.6f}\n" for t in times)


def write_result(out_dir, name, texts):
    box_path, time_path = result_paths(out_dir, name)
    # Time file first: the box file is the completion marker that resume looks for.
    write_atomic(time_path, texts[1])
    write_atomic(box_path, texts[0])


def failure(name, error, seconds=0.0):
    """A failed outcome whose error is one line, even for cv2.error."""
    last = " ".join(traceback.format_exception_only(type(error), error)[-1].split())
    return SequenceOutcome(name, "failed", 0, seconds, last)


def run_one(factory, sequence, out_dir, max_frames=None, on_frame=None):
    """Track one sequence and write its files; errors are returned, never raised, so one bad
    sequence does not stop the others."""
    start = time.perf_counter()
    try:
        texts = result_texts(factory, sequence, max_frames, on_frame)
        write_result(out_dir, sequence.name, texts)
    except Exception as e:  # noqa: BLE001 - any tracker failure is reported per sequence
        return failure(sequence.name, e, time.perf_counter() - start)
    return SequenceOutcome(sequence.name, "done", texts[0].count("\n"), time.perf_counter() - start)


def run(factory, sequences, out_dir, workers=1, max_frames=None, progress=True,
        start_method="spawn", executor=None):
    """Track every sequence not yet complete in out_dir; returns a list of SequenceOutcome.

    The sequences to track go to `executor` (eval.executors: anything with
    run(factory, sequences, out_dir, max_frames, bar) -> outcomes), by default a LocalPool of
    `workers` processes. KeyboardInterrupt stops the workers and propagates; finished sequences
    stay on disk.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_dir)

    def wanted(seq):
        return len(seq) if max_frames is None else min(len(seq), max_frames)

    done = {s.name for s in sequences if is_complete(out_dir, s.name, wanted(s))}
    outcomes = [SequenceOutcome(s.name, "skipped") for s in sequences if s.name in done]
    todo = [s for s in sequences if s.name not in done]
    bar = _Progress(sum(wanted(s) for s in todo), len(todo), len(outcomes), progress)
    executor = executor or LocalPool(workers, start_method)
    try:
        outcomes.extend(executor.run(factory, todo, out_dir, max_frames, bar))
    finally:
        bar.close()
    return outcomes


class LocalPool:
    """The default executor: this process (workers=1) or worker processes (spawn by default:
    safe with torch and OpenCV thread pools)."""

    def __init__(self, workers=1, start_method="spawn"):
        self.workers, self.start_method = workers, start_method

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def run(self, factory, todo, out_dir, max_frames, bar):
        if self.workers > 1 and len(todo) > 1:
            return _run_pool(factory, todo, out_dir, self.workers, max_frames, bar, self.start_method)
        outcomes = []
        for seq in todo:
            outcome = run_one(factory, seq, out_dir, max_frames, lambda i: bar.add(1))
            outcomes.append(outcome)
            bar.sequence_done(outcome)
        return outcomes


def _worker_init(counter):
    global _counter
    _counter = counter
    # The parent handles Ctrl-C and terminates the workers; they ignore it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import cv2

    # OpenCV's thread pool deadlocks or oversubscribes inside worker processes.
    cv2.setNumThreads(0)


def _worker_main(conn, counter):
    """A worker process: run the sequences the parent sends until it sends None or goes away."""
    _worker_init(counter)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        factory, sequence, out_dir, max_frames = task
        outcome = run_one(factory, sequence, out_dir, max_frames, _count_frame)
        if outcome.status == "done":
            with counter.get_lock():
                counter.value += outcome.frames % _PROGRESS_EVERY
        try:
            conn.send(outcome)
        except (BrokenPipeError, OSError):
            return


class _Worker:
    """One worker process with its own pipe, so the parent always knows which sequence it is
    on: a worker that dies (segfault in a native tracker, OOM kill) fails that sequence only,
    where multiprocessing.Pool would wait for its result forever."""

    def __init__(self, ctx, counter):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, counter), daemon=True)
        self.proc.start()
        child.close()
        self.sequence = None

    def give(self, task):
        self.sequence = task[1]
        try:
            self.conn.send(task)
        except (BrokenPipeError, OSError):
            pass  # the process is gone; result() reports it through its sentinel

    def result(self, ready):
        """The outcome of the current sequence if there is news, else None."""
        if self.conn in ready or self.conn.poll():
            try:
                return self.conn.recv()
            except (EOFError, OSError):
                pass
        elif self.proc.sentinel not in ready:
            return None
        self.proc.join(timeout=1)
        return SequenceOutcome(self.sequence.name, "failed",
                               error=f"worker process died (exit code {self.proc.exitcode})")

    def stop(self, force=False):
        if force and self.proc.is_alive():
            self.proc.terminate()
        elif self.proc.is_alive():
            try:
                self.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        self.proc.join(timeout=5)
        self.conn.close()


def _run_pool(factory, todo, out_dir, workers, max_frames, bar, start_method):
    ctx = mp.get_context(start_method)
    counter = ctx.Value("q", 0)
    # Longest sequences first so that one long sequence does not run alone at the end.
    queue = sorted(todo, key=len, reverse=True)
    pool, outcomes = [], []
    try:
        for _ in range(min(workers, len(queue))):
            pool.append(_Worker(ctx, counter))
            pool[-1].give((factory, queue.pop(0), out_dir, max_frames))
        while any(w.sequence is not None for w in pool):
            busy = [w for w in pool if w.sequence is not None]
            ready = mp_wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], 0.5)
            bar.set_frames(counter.value)
            for i, w in enumerate(pool):
                outcome = w.result(ready) if w.sequence is not None else None
                if outcome is None:
                    continue
                outcomes.append(outcome)
                bar.sequence_done(outcome)
                w.sequence = None
                if not w.proc.is_alive():
                    w.stop()
                    if not queue:
                        continue
                    pool[i] = w = _Worker(ctx, counter)
                if queue:
                    w.give((factory, queue.pop(0), out_dir, max_frames))
    except BaseException:
        for w in pool:
            w.stop(force=True)
        raise
    for w in pool:
        w.stop()
    return outcomes


class _Progress:
    """A tqdm bar counting frames (so its rate is frames/s) with sequences in the postfix."""

    def __init__(self, total_frames, n_todo, n_skipped, enabled):
        self.bar = None
        self.done, self.todo, self.skipped, self.failed = 0, n_todo, n_skipped, 0
        if enabled and n_todo:
            from tqdm import tqdm

            self.bar = tqdm(total=total_frames, unit="frame", dynamic_ncols=True, smoothing=0.1)
            self._postfix()

    def _postfix(self):
        text = f"seqs {self.done}/{self.todo}"
        if self.skipped:
            text += f", {self.skipped} done before"
        if self.failed:
            text += f", {self.failed} failed"
        self.bar.set_postfix_str(text, refresh=False)

    def add(self, frames):
        if self.bar is not None:
            self.bar.update(frames)

    def set_frames(self, frames):
        if self.bar is not None:
            self.bar.update(max(0, frames - self.bar.n))

    def sequence_done(self, outcome):
        self.done += 1
        self.failed += outcome.status == "failed"
        if self.bar is not None:
            self._postfix()
            self.bar.refresh()

    def close(self):
        if self.bar is not None:
            self.bar.close()
