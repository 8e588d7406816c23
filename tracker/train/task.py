"""The SiamFC pair task: how a batch of pairs becomes a loss, its validation, and resumable pair batches.

FP training and every MixBin job (search, prune, fine-tuning) train on this
task; MixBin receives it as a plain ``loss_fn(model, batch)``.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from backbones.harness import dist_info

from ..ridge_filter import FILTER_REG, INIT_ITERS, INIT_SHIFT, LABEL_SIGMA, normalise_features
from .filter_head import filter_loss, filter_response, label_energy, target_labels
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
    """SiamFC's balanced logistic loss on the response map, with the precision a run chose, plus
    (``filter_weight`` > 0) the online filter's loss on the search crop (``filter_terms``) and
    (``distill_weight`` > 0) the distance of the search features to a frozen ``teacher``'s
    (``distill_terms``).

    ``bf16`` is honoured only on a CPU with native bf16 (see ``native_bf16``);
    ``label_radius``: pixels from the target centre counted as positive.
    """
    bf16: bool = False
    channels_last: bool = False
    label_radius: float = 16.0
    # The online filter's loss (tracker/train/filter_head.py): its weight (0: the Siamese loss alone,
    # nothing else computed) and the tracker's first-frame settings it is fitted with.
    filter_weight: float = 0.0
    filter_reg: float = FILTER_REG
    filter_label_sigma: float = LABEL_SIGMA
    filter_iters: int = INIT_ITERS
    filter_shift: float = INIT_SHIFT  # search px of the shifted training samples; 0: one sample
    # Feature distillation: a frozen network (e.g. an ImageNet-initialised FP tracker) whose search
    # features the model's imitate, each RMS-normalised per sample as the online filter sees them.
    distill_weight: float = 0.0
    teacher: object = None

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
        terms, resp, target, neg = self.terms(model, batch)
        return self.total(terms), resp, target, neg

    @property
    def has_parts(self) -> bool:
        """Whether the loss has terms beside the Siamese one (validation then reports each)."""
        return self.filter_weight > 0 or self.distill_weight > 0

    def total(self, terms: dict) -> torch.Tensor:
        """The training loss from ``terms``' parts."""
        loss = terms["siamese_loss"]
        if "filter_loss" in terms:
            loss = loss + self.filter_weight * terms["filter_loss"]
        if "distill_loss" in terms:
            loss = loss + self.distill_weight * terms["distill_loss"]
        return loss

    def terms(self, model, batch: dict):
        """({"siamese_loss": ..., "filter_loss": ... (filter_weight > 0), "distill_loss": ... (distill_weight
        > 0)}, response, target, neg)."""
        z, x, target, neg = self.tensors(batch)
        stride = getattr(model, "module", model).stride
        if not self.has_parts:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast_bf16):
                resp = model(z, x)
            labels = siamfc_labels(target, neg, resp.shape[-1], stride, self.label_radius)
            return {"siamese_loss": balanced_logistic_loss(resp, labels)}, resp, target, neg
        # The filter's training frames go through the backbone with the search crops; an empty
        # batch of extra frames still returns the search features (for distillation alone).
        extra = exemplar_canvas(z, x.shape[-1]) if self.filter_weight > 0 else x[:0]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast_bf16):
            resp, xf, cf = model(z, x, extra)
        labels = siamfc_labels(target, neg, resp.shape[-1], stride, self.label_radius)
        terms = {"siamese_loss": balanced_logistic_loss(resp, labels)}
        if self.filter_weight > 0:
            terms["filter_loss"] = self.filter_terms(batch, xf.float(), cf.float(), resp.shape[-1], stride)
        if self.distill_weight > 0:
            terms["distill_loss"] = self.distill_terms(x, xf.float())
        return terms, resp, target, neg

    def distill_terms(self, x: torch.Tensor, xf: torch.Tensor) -> torch.Tensor:
        """Mean squared distance between the model's search features ``xf`` and the teacher's on the
        same crops ``x``, both over their per-sample RMS (so neither scale nor the teacher's BN matters)."""
        if self.teacher is None:
            raise ValueError("distill_weight > 0 needs a teacher")
        with torch.no_grad():
            tf = self.teacher.embed(x).float()
        if tf.shape != xf.shape:
            raise ValueError(f"the teacher's features {tuple(tf.shape[1:])} differ from the model's "
                             f"{tuple(xf.shape[1:])}: distillation needs the same channels and size")
        return F.mse_loss(normalise_features(xf), normalise_features(tf))

    def filter_terms(self, batch: dict, xf: torch.Tensor, cf: torch.Tensor, resp_size: int, stride: int) -> torch.Tensor:
        """The online filter's loss of a batch: fitted to the exemplar's canvas (``exemplar_canvas``)
        and copies of its features rolled by ``filter_shift`` along each axis (the tracker's
        first-frame shifted samples, target at the known shift), then scored on the search crop
        (``filter_loss``: squared error to the Gaussian label at the target; all zero for a negative)."""
        b, n = xf.shape[0], xf.shape[-1]
        k = n - resp_size + 1  # the exemplar's feature size: the filter's, as in the tracker
        s = int(round(self.filter_shift / stride))
        shifts = [(0, 0)] + ([(0, s), (0, -s), (s, 0), (-s, 0)] if s else [])
        train = torch.stack([torch.roll(cf, sh, dims=(-2, -1)) for sh in shifts], dim=1)  # (B, K, C, n, n)
        size_z, size_x = target_sizes(batch, b)
        offsets = torch.tensor(shifts, dtype=torch.float32).repeat(b, 1) * stride
        train_labels = target_labels(offsets, size_z.repeat_interleave(len(shifts)), resp_size, stride,
                                     self.filter_label_sigma).reshape(b, len(shifts), resp_size, resp_size)
        neg = batch["neg"].bool()
        target = torch.nan_to_num(batch["target"].float(), nan=0.0)
        size_test = torch.where(neg, size_z, size_x)
        test_labels = target_labels(target, size_test, resp_size, stride, self.filter_label_sigma)
        test_labels[neg] = 0.0
        resp = filter_response(train, train_labels, xf, k, reg=self.filter_reg, iters=self.filter_iters)
        return filter_loss(resp, test_labels, label_energy(size_test, resp_size, stride, self.filter_label_sigma))

    def __call__(self, model, batch: dict):
        """``loss_fn(model, batch) -> (loss, response)``, the form MixBin's jobs take."""
        loss, resp, _, _ = self.loss(model, batch)
        return loss, resp


def exemplar_canvas(z: torch.Tensor, search_size: int) -> torch.Tensor:
    """(B, 3, E, E) exemplar crops -> (B, 3, S, S) search-size frames with the exemplar at the centre
    at its own scale (both crops share one scale) and its border mirrored outwards: the online
    filter's training frame of a pair. Mirroring, not flat padding, keeps the frame textured like
    a real search crop (the features go through BatchNorm in one batch with the search crops)."""
    e = z.shape[-1]
    p = (search_size - e) // 2
    if search_size - e != 2 * p or not 0 < p < e:
        raise ValueError(f"exemplar {e} px cannot be mirrored out to a {search_size} px frame")
    return F.pad(z, (p, p, p, p), mode="reflect")


def target_sizes(batch: dict, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) target sizes sqrt(w h) in crop pixels of the exemplar (box_z) and the search crop (box_x,
    NaN for a negative). A batch without boxes (synthetic pairs) gets a square target in an
    unjittered exemplar crop: half its side (the context margin makes up the rest)."""
    def size(key):
        box = batch.get(key)
        if box is None:
            return torch.full((b,), float(batch["z"].shape[-1]) / 2)
        box = box.float()
        return (box[:, 2] * box[:, 3]).clamp(min=1.0).sqrt()
    size_z = size("box_z")
    size_x = size("box_x")
    return size_z, torch.where(torch.isnan(size_x), size_z, size_x)


@torch.no_grad()
def validate(model, loader, task: PairTask, max_batches: int) -> dict:
    """Mean loss and the share of positive pairs whose response peak lies within 8 px of the target;
    with the filter or distillation loss on, each term apart too (val_siamese_loss, val_filter_loss,
    val_distill_loss)."""
    was = model.training
    model.eval()
    losses, hits, parts = [], [], {}
    for i, batch in enumerate(loader):
        if i >= max_batches:
            break
        if task.has_parts:
            terms, resp, target, neg = task.terms(model, batch)
            loss = task.total(terms)
            for name, v in terms.items():
                parts.setdefault(f"val_{name}", []).append(float(v))
        else:
            loss, resp, target, neg = task.loss(model, batch)
        losses.append(float(loss))
        hits.append(peak_within(resp, target, neg, model.stride, 8.0, upscale=16 // model.stride * 2))
    model.train(was)
    hits = torch.cat(hits) if hits else torch.zeros(0, dtype=torch.bool)
    return {"val_loss": float(np.mean(losses)) if losses else float("nan"),
            "val_peak8": float(hits.float().mean()) if hits.numel() else float("nan"), "val_pairs": int(hits.numel()),
            **{k: float(np.mean(v)) for k, v in parts.items()}}


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
