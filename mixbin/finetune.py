"""Fine-tuning of any assignment from the FP teacher's weights, with distillation.

One recipe for every strategy (only the spec differs): AdamW, warm-up +
cosine, loss = task_weight·task + distill_weight·D(student out, teacher out)
[+ feature_weight·feature distance]. Resumable from ``finetune.pt`` (model,
optimizer, step, RNG); DDP when launched by torchrun. The caller builds the
student (teacher weights, spec modes, pruning masks) and the batch source;
pass a start-step callable as ``batches`` so a resumed run continues with the
batches an uninterrupted run would have seen.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch

from backbones.harness import (Run, batches_from, cycle, decay_groups, init_distributed, lr_at, set_lr,
                               sync_buffers, wrap_ddp)

from .calibrate import init_binary_paths
from .distill import FeatureTap, feature_loss, get_distill
from .loop import split_output


@dataclass
class FinetuneConfig:
    steps: int = 2000
    lr: float = 1e-3
    weight_decay: float = 0.0  # decay would shrink binary latent weights towards sign flips
    warmup_steps: int = 100  # capped at a tenth of the run for short runs
    final_lr_ratio: float = 0.05
    grad_clip: float = 5.0
    task_weight: float = 1.0
    distill: str = "kl"  # kl | bce | mse, on the model's output (the response map)
    distill_weight: float = 1.0
    temperature: float = 2.0
    feature_weight: float = 0.0  # > 0: also match the backbone's output features
    calib_batches: int = 8  # binary-path warm start before step 0 (calibrate.py)
    ckpt_every: int = 100
    log_every: int = 10
    val_every: int = 0  # 0: validate only at the end
    seed: int = 0


class _LastLosses(dict):
    """The last step's losses, kept in the checkpoint: a run resumed after its last step still reports them."""

    def state_dict(self) -> dict:
        return dict(self)

    def load_state_dict(self, d: dict) -> None:
        self.clear()
        self.update(d)


def finetune(model: torch.nn.Module, loss_fn, batches, cfg: FinetuneConfig, out_dir=None,
             teacher: torch.nn.Module | None = None, distill_fn=None, val_fn=None, progress: bool = False) -> dict:
    """Train ``model`` in place; returns a summary (steps, last losses, validation, wall time)."""
    init_distributed()
    torch.manual_seed(cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(decay_groups(params, cfg.weight_decay), lr=cfg.lr)
    last = _LastLosses()
    run = Run(out_dir, "finetune.pt", {"model": model, "optimizer": opt, "last_losses": last}, cfg.steps, "finetune",
              progress, config=asdict(cfg))
    if run.start == 0:
        if cfg.calib_batches > 0:
            init_binary_paths(model, loss_fn, batches_from(batches, 0), cfg.calib_batches)
        run.log(event="start", config=asdict(cfg), world=run.world, time=time.time())

    distill = distill_fn or get_distill(cfg.distill)
    use_teacher = teacher is not None and (cfg.distill_weight > 0 or cfg.feature_weight > 0)
    if use_teacher:
        teacher.eval()  # its forward runs under no_grad; its parameters are left as they are
    taps = (FeatureTap(model), FeatureTap(teacher)) if use_teacher and cfg.feature_weight > 0 else None

    fwd = wrap_ddp(model)
    model.train()
    it = cycle(batches, run.start)
    run.begin()
    step, rec, val = run.start, {}, {}
    try:
        while step < cfg.steps:
            lr = lr_at(step, cfg.steps, cfg.lr, min(cfg.warmup_steps, max(1, cfg.steps // 10)), cfg.final_lr_ratio)
            set_lr(opt, lr)
            batch = next(it)
            task, out_s = split_output(loss_fn(fwd, batch))
            loss = cfg.task_weight * task
            rec = {"task_loss": float(task.detach())}
            if use_teacher:
                with torch.no_grad():
                    _, out_t = split_output(loss_fn(teacher, batch))
                if cfg.distill_weight > 0:
                    d = distill(out_s, out_t)
                    loss = loss + cfg.distill_weight * d
                    rec["distill_loss"] = float(d.detach())
                if taps:
                    f = feature_loss(taps[0].take(), taps[1].take())
                    loss = loss + cfg.feature_weight * f
                    rec["feature_loss"] = float(f.detach())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            step += 1
            rec["loss"] = float(loss.detach())
            last.load_state_dict(rec)
            run.tick(loss=rec["loss"], lr=f"{lr:.1e}")
            if step % cfg.log_every == 0 or step == cfg.steps:
                run.log(step=step, lr=lr, grad_norm=float(gnorm), **rec, time=time.time())
            if step % cfg.ckpt_every == 0 or step == cfg.steps:
                run.save(step)
            if val_fn is not None and run.rank == 0 and cfg.val_every and step % cfg.val_every == 0 and step < cfg.steps:
                run.log(step=step, **val_fn(model), time=time.time())
    finally:
        run.close_bar()
        if taps:
            for t in taps:
                t.close()
    wall = run.wall()
    sync_buffers(model)
    if val_fn is not None and run.rank == 0:
        val = val_fn(model)
        run.log(step=step, **val, time=time.time())
    run.close()
    return {"steps": step, **last, **val, "wall_time_s": wall}
