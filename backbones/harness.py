"""The one training harness: FP training, MixBin search, prune and fine-tuning all run on it.

A job brings what is specific to it (its model, loss, batches and what to
save) and writes its own step; the harness owns the rest: the distributed
set-up, the learning-rate schedule, weight-decay groups, resumable batch
sources, the RNG state, checkpoint and resume, the JSON-lines log, the
progress bar and the wall clock.

It lives in ``backbones`` because that is the one package both of its
clients may import: the tracking task (``tracker.train``) and MixBin.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

import torch
import torch.distributed as dist

from .files import atomic_write_bytes, plain, read_run, set_rng_state, write_run

# -- distributed ----------------------------------------------------------------


def dist_info() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside torchrun."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed() -> None:
    """Join the process group when launched by torchrun (gloo on CPU, nccl on GPU)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and dist.is_available() and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def wrap_ddp(model: torch.nn.Module) -> torch.nn.Module:
    _, world = dist_info()
    if world == 1:
        return model
    # Units in FP or binary mode leave the other path's parameters unused.
    return torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)


def average_grads(params) -> None:
    """All-reduce the gradients of parameters DDP does not manage (MixBin's gates)."""
    _, world = dist_info()
    if world == 1:
        return
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= world


def sync_buffers(model: torch.nn.Module) -> None:
    """Give every rank rank 0's BatchNorm statistics (DDP syncs them before a forward, not after the last)."""
    _, world = dist_info()
    if world > 1:
        for b in model.buffers():
            dist.broadcast(b, 0)


# -- schedule and optimiser -----------------------------------------------------

def lr_at(step: int, total: int, lr: float, warmup: int, final_ratio: float, shape: str = "cosine") -> float:
    """Linear warm-up over ``warmup`` steps, then cosine (or exponential) decay to final_ratio·lr at ``total``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    t = min((step - warmup) / max(1, total - warmup), 1.0)
    if shape == "exp":
        return lr * final_ratio ** t
    if shape != "cosine":
        raise ValueError(f"unknown schedule {shape!r} (cosine | exp)")
    return lr * (final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def ramp(step: int, total: int, start: float, end: float, begin_frac: float = 0.0, end_frac: float = 1.0,
         geometric: bool = False) -> float:
    """A value moving from ``start`` to ``end`` between two fractions of the run."""
    t = (step / max(1, total) - begin_frac) / max(1e-9, end_frac - begin_frac)
    t = min(max(t, 0.0), 1.0)
    if geometric and start > 0 and end > 0:
        return start * (end / start) ** t
    return start + (end - start) * t


def decay_groups(params, weight_decay: float) -> list[dict]:
    """Weight decay on weights (ndim > 1) only: never on biases, BatchNorm or learnable shifts."""
    params = [p for p in params if p.requires_grad]
    return [{"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for g in opt.param_groups:
        g["lr"] = lr


# -- batches ------------------------------------------------------------------

# A batch source: any iterable of batches, or a callable that, given the step
# to start from, yields the batches from that step on (so that a resumed run
# sees exactly the batches an uninterrupted one would).
BatchSource = Callable[[int], Iterable] | Iterable


def batches_from(source: BatchSource, start_step: int) -> Iterator:
    if callable(source) and not hasattr(source, "__iter__"):
        return iter(source(start_step))
    return iter(source)


def cycle(source: BatchSource, start_step: int = 0) -> Iterator:
    """Never-ending batches: restart the source when it runs out (an epoch ended)."""
    step = start_step
    while True:
        got = False
        for batch in batches_from(source, step):
            got = True
            step += 1
            yield batch
        if not got:
            raise RuntimeError("the batch source yielded no batch")


# -- files of a run -------------------------------------------------------------

class JsonLog:
    """Append-only JSON lines; a no-op where ``path`` is None (non-zero ranks, runs without a folder)."""

    def __init__(self, path=None):
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(path, "a") if path is not None else None

    def __call__(self, **rec) -> None:
        if self.fh:
            self.fh.write(json.dumps(rec) + "\n")
            self.fh.flush()

    def close(self) -> None:
        if self.fh:
            self.fh.close()
            self.fh = None


def _cut_log(log: Path, size: int | None) -> None:
    """Cut the log back to its length at the checkpoint a run resumes from: what followed is run again.

    Without this a resumed run would log the steps between its checkpoint and
    the kill a second time (and keep half a line a kill may leave).
    """
    if size is None or not log.is_file() or log.stat().st_size <= size:
        return
    with open(log, "rb") as f:
        head = f.read(size)
    atomic_write_bytes(log, head)


class Run:
    """A job's resume point, log, progress bar and clock.

    ``parts`` names what the checkpoint holds: ``{"model": model, "optimizer":
    opt, ...}``, anything with ``state_dict``/``load_state_dict`` (None for a
    part the job does not have). If ``out_dir/ckpt_name`` exists, every part
    and the RNG state are restored from it and ``start`` is the step it
    reached; ``save(step)`` writes what a later run restores. Rank 0 alone
    writes; without ``out_dir`` nothing is read or written.
    """

    def __init__(self, out_dir, ckpt_name: str, parts: dict, steps: int, desc: str, progress: bool = False,
                 config: dict | None = None, extra: dict | None = None):
        self.rank, self.world = dist_info()
        out = Path(out_dir) if out_dir is not None else None
        self.ckpt = out / ckpt_name if out is not None else None
        self.parts, self.config, self.extra = parts, plain(config or {}), dict(extra or {})
        self.start, self.elapsed, log_size = self._resume()
        self.writes = out is not None and self.rank == 0
        if self.writes:
            out.mkdir(parents=True, exist_ok=True)
            _cut_log(out / "log.jsonl", log_size)
        self.log = JsonLog(out / "log.jsonl" if self.writes else None)
        self.bar = None
        if progress and self.rank == 0:
            from tqdm import tqdm
            self.bar = tqdm(total=steps, initial=self.start, desc=desc, unit="step", dynamic_ncols=True)
        self.t0 = time.perf_counter()

    def _resume(self) -> tuple[int, float, int | None]:
        """Restore the parts and the RNG: (start step, seconds so far, the log's length at the checkpoint)."""
        if self.ckpt is None or not self.ckpt.exists():
            return 0, 0.0, None
        st = read_run(self.ckpt)
        for name, part in self.parts.items():
            if part is not None and st.get(name) is not None:
                part.load_state_dict(st[name])
        set_rng_state(st["rng"])
        return int(st["step"]), float(st.get("wall_time_s", 0.0)), st.get("log_bytes")

    def begin(self) -> None:
        """Start the clock of this process's share of the run (after any set-up the job does)."""
        self.t0 = time.perf_counter()

    def wall(self) -> float:
        """Seconds of this run so far, the resumed parts included."""
        return self.elapsed + time.perf_counter() - self.t0

    def tick(self, **postfix) -> None:
        """One step done: advance the progress bar, showing ``postfix`` (floats to 3 significant digits)."""
        if self.bar:
            self.bar.update(1)
            self.bar.set_postfix({k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in postfix.items()})

    def save(self, step: int) -> None:
        if not self.writes or self.ckpt is None:
            return
        states = {k: (p.state_dict() if p is not None else None) for k, p in self.parts.items()}
        log_bytes = self.log.fh.tell() if self.log.fh else None  # what the log held at this step (see _cut_log)
        write_run(self.ckpt, states.pop("model"), step, **states, wall_time_s=self.wall(), config=self.config,
                  log_bytes=log_bytes, **self.extra)

    def close_bar(self) -> None:
        if self.bar:
            self.bar.close()
            self.bar = None

    def close(self) -> None:
        self.close_bar()
        self.log.close()
