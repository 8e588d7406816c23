"""The SiamFC pair task: how a batch of pairs becomes a loss, its validation, and resumable pair batches.

FP training and every MixBin job (search, prune, fine-tuning) train on this
task; MixBin receives it as a plain ``loss_fn(model, batch)``.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from backbones.harness import dist_info

from .losses import balanced_logistic_loss, peak_within, siamfc_labels

BIG_STEP = 10 ** 9  # a pair source's end: sources are cut by step counts, never exhausted


@functools.lru_cache(maxsize=None)
def native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Does this CPU compute in bf16 natively (AVX512-BF16 or AMX)?

    Without it, oneDNN emulates bf16 and autocast turns from ~2x faster than fp32
    (a Zen 4 with AVX512-BF16) into ~6x slower (measured on an AVX2-only EPYC:
    32 search crops through resnet16-half in 4.27 s vs 0.74 s), so bf16 is used
    only where it pays.
    """
    try:
        with open(cpuinfo) as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@dataclass(frozen=True)
class PairTask:
    """SiamFC's balanced logistic loss on the response map, with the precision a run chose.

    ``bf16`` is honoured only on a CPU with native bf16 (see ``native_bf16``);
    ``label_radius``: pixels from the target centre counted as positive.
    """
    bf16: bool = False
    channels_last: bool = False
    label_radius: float = 16.0

    @property
    def autocast_bf16(self) -> bool:
        return self.bf16 and not torch.cuda.is_available() and native_bf16()

    def tensors(self, batch: dict):
        """(z, x, target, neg) as float/bool tensors in the run's memory format."""
        z, x = batch["z"].float(), batch["x"].float()
        if self.channels_last:
            z, x = z.contiguous(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        return z, x, torch.nan_to_num(batch["target"].float(), nan=0.0), batch["neg"].bool()

    def loss(self, model, batch: dict):
        """(loss, response, target, neg) of one batch; ``model`` may be DDP-wrapped."""
        z, x, target, neg = self.tensors(batch)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast_bf16):
            resp = model(z, x)
        stride = getattr(model, "module", model).stride
        labels = siamfc_labels(target, neg, resp.shape[-1], stride, self.label_radius)
        return balanced_logistic_loss(resp, labels), resp, target, neg

    def __call__(self, model, batch: dict):
        """``loss_fn(model, batch) -> (loss, response)``, the form MixBin's jobs take."""
        loss, resp, _, _ = self.loss(model, batch)
        return loss, resp


@torch.no_grad()
def validate(model, loader, task: PairTask, max_batches: int) -> dict:
    """Mean loss and the share of positive pairs whose response peak lies within 8 px of the target."""
    was = model.training
    model.eval()
    losses, hits = [], []
    for i, batch in enumerate(loader):
        if i >= max_batches:
            break
        loss, resp, target, neg = task.loss(model, batch)
        losses.append(float(loss))
        hits.append(peak_within(resp, target, neg, model.stride, 8.0, upscale=16 // model.stride * 2))
    model.train(was)
    hits = torch.cat(hits) if hits else torch.zeros(0, dtype=torch.bool)
    return {"val_loss": float(np.mean(losses)) if losses else float("nan"),
            "val_peak8": float(hits.float().mean()) if hits.numel() else float("nan"), "val_pairs": int(hits.numel())}


class StepSampler(torch.utils.data.Sampler):
    """Deterministic, resumable indices: global position p -> perm(epoch)[p % N].

    Each step draws ``batch * world`` consecutive positions; rank r takes its
    slice, so ranks never see the same pair and a resumed run continues the
    exact sequence.
    """

    def __init__(self, n: int, batch: int, start_step: int, end_step: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.batch, self.start, self.end = n, batch, start_step, end_step
        self.seed, self.rank, self.world = seed, rank, world
        self._perm_epoch, self._perm = -1, None

    def _index(self, p: int) -> int:
        epoch = p // self.n
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng(self.seed + 1000003 * epoch).permutation(self.n)
            self._perm_epoch = epoch
        return int(self._perm[p % self.n])

    def __iter__(self):
        gb = self.batch * self.world
        for step in range(self.start, self.end):
            base = step * gb + self.rank * self.batch
            for k in range(self.batch):
                yield self._index(base + k)

    def __len__(self):
        return (self.end - self.start) * self.batch


def _worker_init(_):
    import cv2
    cv2.setNumThreads(0)  # OpenCV's pool deadlocks forked DataLoader workers
    torch.set_num_threads(1)


def pair_batches(ds, batch_size: int, seed: int, workers: int = 0):
    """A start-step callable over ``ds`` (the harness's batch source): resumable and DDP-sliced."""
    def source(start: int):
        rank, world = dist_info()
        sampler = StepSampler(len(ds), batch_size, start, BIG_STEP, seed, rank, world)
        # Its own generator: without one, each new iterator draws a seed from the global RNG, and a
        # resumed run, whose iterator starts after the checkpoint's RNG state is restored, would
        # draw once more than an uninterrupted run and continue on another random stream.
        return torch.utils.data.DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=workers,
                                           worker_init_fn=_worker_init if workers else None,
                                           prefetch_factor=4 if workers else None, persistent_workers=False,
                                           generator=torch.Generator().manual_seed(seed))
    return source
