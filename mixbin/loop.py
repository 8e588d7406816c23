"""Plumbing shared by the search and the fine-tuning: batches, checkpoints, logs, DDP.

Task-agnostic by contract: a model, ``loss_fn(model, batch)`` and batches come
in from the caller (the CLI wires the tracker's); nothing here knows what a
batch holds.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterable, Iterator

import torch
import torch.distributed as dist

from backbones import Backbone
from backbones.files import plain, read_run, set_rng_state, write_run

# A batch source: either any iterable of batches, or a callable that, given the
# step to start from, yields the batches from that step on (so that a resumed
# run sees exactly the batches an uninterrupted one would).
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


def find_backbone(model: torch.nn.Module) -> Backbone:
    """The Backbone inside ``model`` (``model`` itself, ``model.backbone`` or the first found)."""
    if isinstance(model, Backbone):
        return model
    bb = getattr(model, "backbone", None)
    if isinstance(bb, Backbone):
        return bb
    for m in model.modules():
        if isinstance(m, Backbone):
            return m
    raise TypeError(f"{type(model).__name__} contains no backbones.Backbone")


def backbone_prefix(model: torch.nn.Module) -> str:
    """State-dict prefix of the backbone inside ``model`` ("backbone." for SiamNet)."""
    bb = find_backbone(model)
    for name, m in model.named_modules():
        if m is bb:
            return f"{name}." if name else ""
    raise AssertionError("unreachable")


def split_output(ret):
    """``loss_fn`` may return the loss alone or (loss, output, ...); give (loss, output)."""
    if isinstance(ret, (tuple, list)):
        return ret[0], (ret[1] if len(ret) > 1 else None)
    return ret, None


def lr_at(step: int, total: int, lr: float, warmup: int, final_ratio: float) -> float:
    """Linear warm-up, then cosine decay to final_ratio·lr."""
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return lr * (final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def ramp(step: int, total: int, start: float, end: float, begin_frac: float = 0.0, end_frac: float = 1.0,
         geometric: bool = False) -> float:
    """A value moving from ``start`` to ``end`` between two fractions of the run."""
    t = (step / max(1, total) - begin_frac) / max(1e-9, end_frac - begin_frac)
    t = min(max(t, 0.0), 1.0)
    if geometric and start > 0 and end > 0:
        return start * (end / start) ** t
    return start + (end - start) * t


# -- distributed ------------------------------------------------------------

def dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def maybe_init_distributed() -> None:
    """Join the process group when launched by torchrun (gloo on CPU, nccl on GPU)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and dist.is_available() and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def average_grads(params) -> None:
    """All-reduce gradients of parameters DDP does not manage (the gates)."""
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


def wrap_ddp(model: torch.nn.Module) -> torch.nn.Module:
    _, world = dist_info()
    if world == 1:
        return model
    # Units in FP or binary mode leave the other path's parameters unused.
    return torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)


# -- checkpoints and logs ---------------------------------------------------

class JsonLog:
    """Append-only JSON lines; a no-op where ``path`` is None (non-zero ranks, tests)."""

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


def resume_gated(ckpt, model: torch.nn.Module, gates: torch.nn.Module, opt_gates, opt_weights) -> tuple[int, float]:
    """Restore a gate search (search.pt / prune.pt) in place; (start step, wall time so far)."""
    if ckpt is None or not Path(ckpt).exists():
        return 0, 0.0
    st = read_run(ckpt)
    model.load_state_dict(st["model"])
    gates.load_state_dict(st["gates"])
    opt_gates.load_state_dict(st["opt_gates"])
    if opt_weights is not None and st.get("opt_weights") is not None:
        opt_weights.load_state_dict(st["opt_weights"])
    set_rng_state(st["rng"])
    return int(st["step"]), float(st.get("wall_time_s", 0.0))


class GatedRun:
    """The files of a gate search (MixBin and prune alike): resume, checkpoint, log, progress bar.

    ``out_dir/ckpt_name`` is restored by ``resume_gated`` if it is there, and
    ``save`` writes what it restores; ``log.jsonl`` goes next to it. Rank 0
    alone writes; without ``out_dir`` nothing is read or written.
    """

    def __init__(self, out_dir, ckpt_name: str, model: torch.nn.Module, gates: torch.nn.Module, opt_gates,
                 opt_weights, cfg, progress: bool, desc: str):
        rank, _ = dist_info()
        out = Path(out_dir) if out_dir is not None else None
        self.ckpt = out / ckpt_name if out is not None else None
        self.start, self.elapsed = resume_gated(self.ckpt, model, gates, opt_gates, opt_weights)
        if out is not None and rank == 0:
            out.mkdir(parents=True, exist_ok=True)
        self.log = JsonLog(out / "log.jsonl" if out is not None and rank == 0 else None)
        self.bar = progress_bar(progress and rank == 0, cfg.steps, self.start, desc)
        self._writes = self.ckpt is not None and rank == 0
        self._saved = (model, gates, opt_gates, opt_weights, cfg)  # what ``save`` writes

    def begin(self, model: torch.nn.Module, batches: BatchSource) -> tuple[torch.nn.Module, Iterator]:
        """Start the loop's clock; (the model to call, DDP-wrapped where distributed; batches from the start step)."""
        fwd = wrap_ddp(model)
        model.train()
        it = cycle(batches, self.start)
        self.t0 = time.perf_counter()
        return fwd, it

    def wall(self) -> float:
        """Seconds of search so far, over all runs of it (the resumed ones included)."""
        return self.elapsed + time.perf_counter() - self.t0

    def tick(self, task: torch.Tensor, cost: torch.Tensor) -> None:
        """Advance the progress bar by one step."""
        if self.bar:
            self.bar.update(1)
            self.bar.set_postfix(task=f"{float(task.detach()):.3f}", cost=f"{float(cost.detach()):.3f}")

    def save(self, step: int) -> None:
        if self._writes:
            model, gates, opt_g, opt_w, cfg = self._saved
            write_run(self.ckpt, model.state_dict(), step, gates=gates.state_dict(), opt_gates=opt_g.state_dict(),
                      opt_weights=opt_w.state_dict() if opt_w else None, wall_time_s=self.wall(),
                      config=plain(asdict(cfg)))

    def close_bar(self) -> None:
        if self.bar:
            self.bar.close()


def gate_step(loss, gates, opt_gates, opt_weights, weights, grad_clip: float, weight_lr: float) -> None:
    """One optimisation step of a gate search: gates always, weights when they train too."""
    opt_gates.zero_grad(set_to_none=True)
    if opt_weights:
        opt_weights.zero_grad(set_to_none=True)
    loss.backward()
    average_grads(gates.parameters())
    if opt_weights:
        torch.nn.utils.clip_grad_norm_(weights, grad_clip)
        for g in opt_weights.param_groups:
            g["lr"] = weight_lr
        opt_weights.step()
    opt_gates.step()


def progress_bar(enabled: bool, total: int, initial: int, desc: str):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True)
