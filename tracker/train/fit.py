"""Offline FP training of the tracker's network on the shared harness, resumably.

Run it through ``tools/train_siamfc.py`` (plain or under ``torchrun``). A run
directory holds ``last.pt`` (model, optimizer, RNG and step; b2track-run/1),
``log.jsonl`` (one line per logged step and per validation), ``config.json``
and ``curves.png``. Restarting with the same ``out`` resumes from
``last.pt``; a kill loses at most ``ckpt_every`` steps.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from backbones.files import read_model
from backbones.harness import Run, cycle, decay_groups, dist_info, init_distributed, lr_at, set_lr, wrap_ddp

from ..model import SiamNet
from ..ridge_filter import INIT_ITERS
from .task import PairTask, native_bf16, pair_batches, validate


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of an FP training run; never changed once made (the run derives what it needs)."""
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
    # Weight of the online filter's loss (tracker/train/filter_head.py) beside the Siamese loss; 0 trains
    # the Siamese response alone. The filter is fitted with this many CG iterations (the tracker's
    # first frame: 15) and the tracker's lambda and label width.
    filter_loss_weight: float = 0.0
    filter_iters: int = INIT_ITERS
    # Feature distillation (PairTask.distill_terms): a b2track model file whose search features this
    # model's imitate (same channels and size, e.g. the ImageNet-initialised mobilenetv2-s8 FP tracker
    # for b2net), and the weight of that term.
    distill_from: str = ""
    distill_weight: float = 0.0
    init: str = ""  # optional checkpoint to start the weights from
    # torchvision's MobileNetV2 ImageNet checkpoint, for a mobilenetv2-s8 backbone (neck and head start fresh)
    init_imagenet: str = ""
    data: dict = field(default_factory=dict)  # handed to the dataset factory


def make_optimizer(params, cfg: TrainConfig):
    groups = decay_groups(params, cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r} (adamw | sgd)")


def start_weights(model: SiamNet, cfg: TrainConfig) -> None:
    """A fresh run's starting weights: ``cfg.init`` (a b2track checkpoint) or ``cfg.init_imagenet``."""
    if cfg.init:
        model.load_state_dict(read_model(cfg.init)[0])
    if cfg.init_imagenet:
        from backbones.mobilenet import load_imagenet_weights
        load_imagenet_weights(model.backbone, cfg.init_imagenet)


def distill_teacher(cfg: TrainConfig) -> SiamNet | None:
    """The frozen network of ``cfg.distill_from`` (None without distillation); a file problem is a
    zoo.ModelError (one line)."""
    if cfg.distill_weight <= 0 and not cfg.distill_from:
        return None
    if cfg.distill_weight <= 0 or not cfg.distill_from:
        raise ValueError("feature distillation needs both distill_from (a model file) and distill_weight > 0")
    from ..zoo import load_model
    return load_model(cfg.distill_from)[0].requires_grad_(False)


def train(cfg: TrainConfig, train_ds, val_ds=None, model: SiamNet | None = None, progress: bool = True) -> SiamNet:
    init_distributed()
    rank, world = dist_info()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    model = model or SiamNet(cfg.backbone)
    if not (out / "last.pt").exists():  # a resumed run has its own weights
        start_weights(model, cfg)
    if cfg.bf16 and not torch.cuda.is_available() and not native_bf16() and rank == 0:
        print("bf16 requested, but this CPU has no native bf16 (avx512_bf16/amx_bf16): training in fp32, "
              "which is several times faster here", flush=True)
    channels_last = cfg.channels_last
    if channels_last and world > 1 and not torch.cuda.is_available():
        # torch 2.13 + gloo: channels-last tensors crash DDP's backward (SIGSEGV), seen here.
        print("DDP on CPU: channels_last disabled", flush=True)
        channels_last = False
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    task = PairTask(bf16=cfg.bf16, channels_last=channels_last, label_radius=cfg.label_radius,
                    filter_weight=cfg.filter_loss_weight, filter_iters=cfg.filter_iters,
                    distill_weight=cfg.distill_weight, teacher=distill_teacher(cfg))
    opt = make_optimizer(model.parameters(), cfg)
    run = Run(out, "last.pt", {"model": model, "optimizer": opt}, cfg.steps, "train", progress, config=asdict(cfg),
              extra={"backbone": cfg.backbone, "modes": model.backbone.modes()})
    if run.start and rank == 0:
        print(f"resuming {out} at step {run.start}", flush=True)
    if rank == 0 and run.start == 0:
        (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    ddp = wrap_ddp(model)
    batches = cycle(pair_batches(train_ds, cfg.batch_size, cfg.seed, cfg.workers), run.start)
    val_loader = None
    if val_ds is not None and rank == 0:
        val_loader = torch.utils.data.DataLoader(val_ds, batch_size=cfg.batch_size, shuffle=False, num_workers=0)
    model.train()
    run.begin()
    step, t_last, wait, busy, pairs_since = run.start, time.perf_counter(), 0.0, 0.0, 0
    try:
        while step < cfg.steps:
            t0 = time.perf_counter()
            batch = next(batches)
            t1 = time.perf_counter()
            lr = lr_at(step, cfg.steps, cfg.lr, cfg.warmup_steps, cfg.final_lr_ratio, cfg.schedule)
            set_lr(opt, lr)
            loss = task.loss(ddp, batch)[0]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
            t2 = time.perf_counter()
            wait += t1 - t0
            busy += t2 - t1
            pairs_since += cfg.batch_size * world
            run.tick(loss=float(loss.detach()), lr=f"{lr:.1e}")
            if step % cfg.log_every == 0:
                now = time.perf_counter()
                run.log(step=step, loss=float(loss.detach()), lr=lr, grad_norm=float(gnorm),
                        pairs_per_s=pairs_since / (now - t_last), data_wait=wait / max(1e-9, wait + busy),
                        time=time.time())
                t_last, wait, busy, pairs_since = now, 0.0, 0.0, 0
            if step % cfg.ckpt_every == 0 or step == cfg.steps:
                run.save(step)
            if val_loader is not None and (step % cfg.val_every == 0 or step == cfg.steps):
                run.log(step=step, **validate(model, val_loader, task, cfg.val_batches), time=time.time())
    finally:
        run.close()
    if rank == 0:
        plot_curves(out)
        if step >= cfg.steps:
            save_tracker_model(out / "model.pt", model, cfg)
    return model


def save_tracker_model(path: Path, model: SiamNet, cfg: TrainConfig) -> Path:
    """The finished network as a model file the trackers load (``track --model``, ``track-eval run
    --model``) and the MixBin jobs take as a teacher; the run's last.pt stays the resumable state."""
    from backbones import Spec

    from ..zoo import save_model
    spec = Spec.build(cfg.backbone, model.backbone.modes(), provenance={"strategy": "fp", "run": str(path.parent)})
    return save_model(path, model, spec, {"steps": cfg.steps, "config": asdict(cfg)})


def plot_curves(run_dir: Path) -> Path | None:
    """Loss / lr / validation curves of a run as PNG."""
    run_dir = Path(run_dir)
    log = run_dir / "log.jsonl"
    recs = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
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
