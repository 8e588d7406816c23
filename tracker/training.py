"""Offline SiamFC training: resumable, bf16 + channels_last on CPU, DDP-ready.

Run it through ``tools/train_siamfc.py`` (plain or under ``torchrun``). A run
directory holds ``last.pt`` (model, optimizer, scheduler, RNG and step),
``log.jsonl`` (one line per logged step and per validation) and
``curves.png``. Restarting with the same ``--out`` resumes from ``last.pt``;
a kill loses at most ``ckpt_every`` steps.
"""
from __future__ import annotations

import functools
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from backbones.files import plain, read_model, read_run, set_rng_state, write_run

from .losses import balanced_logistic_loss, peak_within, siamfc_labels
from .model import SiamNet


@dataclass
class TrainConfig:
    backbone: str = "resnet16-half"
    out: str = "runs/fp"
    steps: int = 10000
    batch_size: int = 16  # per process
    lr: float = 3e-3
    weight_decay: float = 5e-4
    optimizer: str = "adamw"  # adamw | sgd
    warmup_steps: int = 150
    schedule: str = "cosine"  # cosine | exp
    final_lr_ratio: float = 0.05
    grad_clip: float = 5.0
    bf16: bool = True  # bf16 autocast on CPUs with native bf16 (see native_bf16); fp32 elsewhere
    channels_last: bool = True
    ckpt_every: int = 100
    log_every: int = 10
    val_every: int = 500
    val_batches: int = 20
    seed: int = 0
    workers: int = 1
    threads: int = 0  # 0: leave torch's default
    label_radius: float = 16.0
    init: str = ""  # optional checkpoint to start the weights from
    data: dict = field(default_factory=dict)  # handed to the dataset factory


# -- distributed helpers ----------------------------------------------------

def dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def maybe_init_distributed() -> None:
    """Start a process group when launched by torchrun (gloo on CPU, nccl on GPU)."""
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


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


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine or exponential decay to final_lr_ratio·lr."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    if cfg.schedule == "exp":
        return cfg.lr * cfg.final_lr_ratio ** t
    return cfg.lr * (cfg.final_lr_ratio + (1 - cfg.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def make_optimizer(params, cfg: TrainConfig):
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r} (adamw | sgd)")


@functools.lru_cache(maxsize=None)
def native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Does this CPU compute in bf16 natively (AVX512-BF16 or AMX)?

    Without it, oneDNN emulates bf16 and autocast turns from ~2x faster (Zen 4, the GUIDE's
    measurement) into ~6x slower than fp32 (measured on an AVX2-only EPYC: 32 search crops
    through resnet16-half in 4.27 s vs 0.74 s), so bf16 is used only where it pays.
    """
    try:
        with open(cpuinfo) as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def use_bf16(cfg: TrainConfig) -> bool:
    """bf16 autocast for this run: asked for, on a CPU (CUDA trains in fp32 here), with native bf16."""
    return cfg.bf16 and not torch.cuda.is_available() and native_bf16()


def batch_to(batch: dict, channels_last: bool):
    z, x = batch["z"].float(), batch["x"].float()
    if channels_last:
        z, x = z.contiguous(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    target = batch["target"].float()
    neg = batch["neg"].bool()
    return z, x, torch.nan_to_num(target, nan=0.0), neg


def pair_loss(model: SiamNet, batch: dict, cfg: TrainConfig):
    """Loss and response of one batch (the function MixBin's search also uses)."""
    z, x, target, neg = batch_to(batch, cfg.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16(cfg)):
        resp = model(z, x)
    stride = getattr(model, "module", model).stride  # DDP wraps the SiamNet
    labels = siamfc_labels(target, neg, resp.shape[-1], stride, cfg.label_radius)
    return balanced_logistic_loss(resp, labels), resp, target, neg


@torch.no_grad()
def validate(model: SiamNet, loader, cfg: TrainConfig) -> dict:
    was = model.training
    model.eval()
    losses, hits = [], []
    for i, batch in enumerate(loader):
        if i >= cfg.val_batches:
            break
        loss, resp, target, neg = pair_loss(model, batch, cfg)
        losses.append(float(loss))
        hits.append(peak_within(resp, target, neg, model.stride, 8.0, upscale=16 // model.stride * 2))
    model.train(was)
    hits = torch.cat(hits) if hits else torch.zeros(0, dtype=torch.bool)
    return {"val_loss": float(np.mean(losses)) if losses else float("nan"),
            "val_peak8": float(hits.float().mean()) if hits.numel() else float("nan"), "val_pairs": int(hits.numel())}


def save_checkpoint(path: Path, model, opt, step: int, cfg: TrainConfig, extra: dict | None = None) -> None:
    write_run(path, model.state_dict(), step, optimizer=opt.state_dict(), config=plain(asdict(cfg)),
              backbone=cfg.backbone, modes=model.backbone.modes(), **(extra or {}))


def _log(fh, rec: dict) -> None:
    fh.write(json.dumps(rec) + "\n")
    fh.flush()


def train(cfg: TrainConfig, train_ds, val_ds=None, model: SiamNet | None = None, progress: bool = True) -> SiamNet:
    maybe_init_distributed()
    rank, world = dist_info()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    model = model or SiamNet(cfg.backbone)
    if cfg.init and not (out / "last.pt").exists():
        state, _, _ = read_model(cfg.init)
        model.load_state_dict(state)
    if cfg.bf16 and not torch.cuda.is_available() and not native_bf16() and rank == 0:
        print("bf16 requested, but this CPU has no native bf16 (avx512_bf16/amx_bf16): training in fp32, "
              "which is several times faster here", flush=True)
    if cfg.channels_last and world > 1 and not torch.cuda.is_available():
        # torch 2.13 + gloo: channels-last tensors crash DDP's backward (SIGSEGV), seen here.
        print("DDP on CPU: channels_last disabled", flush=True)
        cfg.channels_last = False
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = make_optimizer([p for p in model.parameters() if p.requires_grad], cfg)
    start = 0
    ckpt = out / "last.pt"
    if ckpt.exists():
        state = read_run(ckpt)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start = int(state["step"])
        set_rng_state(state["rng"])
        if rank == 0:
            print(f"resuming {out} at step {start}", flush=True)
    # FP-mode units leave their binary-path parameters unused, hence find_unused_parameters.
    ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True) if world > 1 else model
    sampler = StepSampler(len(train_ds), cfg.batch_size, start, cfg.steps, cfg.seed, rank, world)
    # Its own generator: without one, the iterator draws its workers' seed from the global RNG after
    # the checkpoint's RNG state was restored, so a resumed run would continue on another stream.
    loader = torch.utils.data.DataLoader(train_ds, batch_size=cfg.batch_size, sampler=sampler,
                                         num_workers=cfg.workers, worker_init_fn=_worker_init,
                                         persistent_workers=False, prefetch_factor=4 if cfg.workers else None,
                                         generator=torch.Generator().manual_seed(cfg.seed))
    val_loader = None
    if val_ds is not None and rank == 0:
        val_loader = torch.utils.data.DataLoader(val_ds, batch_size=cfg.batch_size, shuffle=False, num_workers=0)
    bar = None
    if progress and rank == 0:
        from tqdm import tqdm
        bar = tqdm(total=cfg.steps, initial=start, desc="train", unit="step", dynamic_ncols=True)
    log = open(out / "log.jsonl", "a") if rank == 0 else None
    if rank == 0 and start == 0:
        (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    model.train()
    step, t_last, wait, busy, pairs_since = start, time.perf_counter(), 0.0, 0.0, 0
    it = iter(loader)
    try:
        while step < cfg.steps:
            t0 = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                break
            t1 = time.perf_counter()
            lr = lr_at(step, cfg)
            for g in opt.param_groups:
                g["lr"] = lr
            loss, _, _, _ = pair_loss(ddp, batch, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
            t2 = time.perf_counter()
            wait += t1 - t0
            busy += t2 - t1
            pairs_since += cfg.batch_size * world
            if bar:
                bar.update(1)
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}", lr=f"{lr:.1e}")
            if rank == 0 and step % cfg.log_every == 0:
                now = time.perf_counter()
                _log(log, {"step": step, "loss": float(loss.detach()), "lr": lr, "grad_norm": float(gnorm),
                           "pairs_per_s": pairs_since / (now - t_last), "data_wait": wait / max(1e-9, wait + busy),
                           "time": time.time()})
                t_last, wait, busy, pairs_since = now, 0.0, 0.0, 0
            if rank == 0 and (step % cfg.ckpt_every == 0 or step == cfg.steps):
                save_checkpoint(ckpt, model, opt, step, cfg)
            if val_loader is not None and (step % cfg.val_every == 0 or step == cfg.steps):
                _log(log, {"step": step, **validate(model, val_loader, cfg), "time": time.time()})
    finally:
        if bar:
            bar.close()
        if log:
            log.close()
    if rank == 0:
        plot_curves(out)
    return model


def _worker_init(_):
    import cv2
    cv2.setNumThreads(0)  # OpenCV's pool deadlocks forked DataLoader workers
    torch.set_num_threads(1)


def plot_curves(run_dir: Path) -> Path | None:
    """Loss / lr / validation curves of a run as PNG."""
    run_dir = Path(run_dir)
    recs = [json.loads(l) for l in (run_dir / "log.jsonl").read_text().splitlines() if l.strip()] if (run_dir / "log.jsonl").exists() else []
    if not recs:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    tr = [r for r in recs if "loss" in r]
    va = [r for r in recs if "val_loss" in r]
    fig, ax = plt.subplots(1, 3, figsize=(14, 4))
    if tr:
        ax[0].plot([r["step"] for r in tr], [r["loss"] for r in tr], lw=0.8, label="train")
    if va:
        ax[0].plot([r["step"] for r in va], [r["val_loss"] for r in va], "o-", label="val")
        ax[2].plot([r["step"] for r in va], [r["val_peak8"] for r in va], "o-")
    ax[0].set(title="loss", xlabel="step")
    ax[0].legend()
    if tr:
        ax[1].plot([r["step"] for r in tr], [r["lr"] for r in tr])
    ax[1].set(title="learning rate", xlabel="step")
    ax[2].set(title="val: peak within 8 px", xlabel="step", ylim=(0, 1))
    fig.tight_layout()
    path = run_dir / "curves.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
