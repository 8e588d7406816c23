"""MixBin's two pipeline steps as library functions: search (a spec for a budget) and fine-tuning.

    from mixbin.pipeline import FinetuneJob, SearchJob, run_finetune, run_search
    from mixbin.tracking_task import tracking_task      # the tracker's model, loss and pairs
    task = tracking_task()
    run_search(SearchJob(out="runs/b030", data="data_cache/pairs", budget=0.3, teacher="runs/fp/last.pt"), task)
    run_finetune(FinetuneJob(out="runs/b030/ft", data="data_cache/pairs", spec="runs/b030/spec.json",
                             teacher="runs/fp/last.pt"), task)

Task-agnostic: the model, loss, data and batches come in a ``Task``. A job's inputs are checked
before anything long starts; a user error is raised, never exited on: PipelineError, or the
SpecError / BudgetError / FileFormatError of the file or budget at fault, each one line. The
messages name a job's fields as the ``mixbin`` options they mirror (``--budget``), so the CLI
passes them on unchanged.

What each step writes (the ``mixbin`` CLI's files): search -> OUT/spec.json (last: its presence
marks the search done), OUT/model.pt, OUT/log.jsonl and OUT/search.pt or prune.pt (resume);
fine-tuning -> OUT/result.json, OUT/spec.json, OUT/model.pt (last: marks it done), OUT/log.jsonl,
OUT/finetune.pt (resume). A step whose marker exists does nothing; otherwise it resumes where
it stopped. Under torchrun every rank calls the step; rank 0 writes the results.
"""
from __future__ import annotations

import itertools
import json
import os
import time
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Mapping

import torch


class PipelineError(ValueError):
    """A job that cannot run as given (missing file, bad option, unusable output folder)."""


def user_errors() -> tuple:
    """Every error type a step raises for a user's input; a caller prints them as one line."""
    from backbones import SpecError
    from backbones.files import FileFormatError

    from .select import BudgetError
    return PipelineError, SpecError, BudgetError, FileFormatError


@dataclass(frozen=True)
class Task:
    """What a task plugs into the pipeline (``mixbin.tracking_task`` builds the tracker's)."""
    build_model: Callable[[str], torch.nn.Module]  # backbone name -> fresh model holding that backbone
    loss_fn: Callable  # (model, batch) -> (loss, output)
    load_data: Callable[[str], tuple]  # a job's data -> (train set, val set or None); raises PipelineError
    train_batches: Callable  # (train set, batch_size, seed, workers) -> resumable batch source
    validate: Callable  # (model, list of batches) -> {metric: value}


@dataclass(frozen=True, kw_only=True)
class _Job:
    out: str | Path
    data: str | Path
    teacher: str | Path | None = None  # FP checkpoint
    steps: int | None = None  # None: the strategy's / FinetuneConfig's default
    seed: int | None = None  # None: 0 (fine-tuning: FinetuneConfig's)
    batch_size: int = 16
    val_batches: int = 8  # held-out batches for validation
    workers: int = 0  # DataLoader workers
    threads: int = 0  # torch threads; 0: torch's choice
    progress: bool = True
    overrides: Mapping[str, object] = field(default_factory=dict)  # config fields (``--set``)


@dataclass(frozen=True, kw_only=True)
class SearchJob(_Job):
    strategy: str = "mixbin"  # a name of mixbin.strategies.STRATEGIES
    budget: float | None = None  # in (0, 1]; strategies that need none ignore it
    backbone: str | None = None  # None: the teacher's
    input_size: int | None = None  # None: the backbone's search size
    budget_metric: str = "macs"  # macs (the paper's) | latency (measured unit times on this CPU)
    latency_threads: int = 1  # threads the latency table is measured with


@dataclass(frozen=True, kw_only=True)
class FinetuneJob(_Job):
    spec: str | Path  # spec JSON (from a search)
    lr: float | None = None
    distill: str | None = None  # kl | bce | mse | none; None: FinetuneConfig's


@dataclass(frozen=True)
class Outcome:
    path: Path  # the file that marks the step done
    message: str | None  # one line for the user; None on DDP ranks other than 0
    already_done: bool = False


# -- checks shared by both steps --------------------------------------------------------------

def check_out(out) -> None:
    """Fail now, not after loading data and training, on an output folder that cannot be made."""
    p = Path(out).absolute()
    while not p.exists() and p.parent != p:
        p = p.parent
    if not p.is_dir():
        raise PipelineError(f"--out {out}: {p} is not a folder")
    if not os.access(p, os.W_OK | os.X_OK):
        raise PipelineError(f"--out {out}: {p} is not writable")


def check_backbone(name: str) -> None:
    from backbones import list_backbones
    if name not in list_backbones():
        raise PipelineError(f"unknown backbone {name!r}; available: {', '.join(list_backbones())}")


def check_steps(steps) -> None:
    if steps is not None and steps < 1:
        raise PipelineError(f"--steps must be >= 1, got {steps}")


def config_overrides(overrides: Mapping, cls) -> dict:
    """``overrides`` checked against the fields of the config dataclass ``cls``."""
    names = {f.name for f in fields(cls)}
    for k in overrides:
        if k not in names:
            raise PipelineError(f"--set {k}: not a {cls.__name__} field ({', '.join(sorted(names))})")
    return dict(overrides)


def load_teacher(path) -> tuple:
    """(state, backbone name, description) of an FP teacher checkpoint; (None, None, None) without one."""
    from .io import CheckpointError, backbone_name_of, read_model
    if path is None:
        return None, None, None
    try:
        state, spec, meta = read_model(path)
    except CheckpointError as e:
        raise PipelineError(f"--teacher: {e}") from None
    if spec and any(m != "fp" for m in spec.get("units", {}).values()):
        raise PipelineError(f"--teacher {path} is a B2NN (spec has binary units); the teacher must be the FP model")
    return state, backbone_name_of(spec, meta), str(path)


def build_model(task: Task, backbone: str, state: dict | None) -> torch.nn.Module:
    """The task's model with the teacher's weights (if any)."""
    from backbones.files import state_dict_problem
    net = task.build_model(backbone)
    if state is not None:
        try:
            net.load_state_dict(state)
        except RuntimeError as e:
            raise PipelineError(f"teacher weights do not fit backbone {backbone}: {state_dict_problem(e)}") from None
    return net


def fixed_batches(ds, batch_size: int, n: int) -> list:
    """The first ``n`` batches of ``ds`` in order: the same held-out pairs for every strategy."""
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=0)
    return list(itertools.islice(loader, n))


def _check_reachable(backbone: str, budget: float, input_size: int | None) -> None:
    """A budget below the all-binary cost fails now, not after loading data."""
    from backbones import create_backbone, unit_costs

    from .select import capacity
    net = create_backbone(backbone)
    capacity({n: c.macs for n, c in unit_costs(net, input_size or net.search_size).items()}, budget)


def _start(job: _Job, task: Task, marker: str):
    """None where OUT already holds ``marker``; else (out, train set, val set or None, rank) with the
    data loaded, the threads set and the process group joined."""
    from backbones.harness import dist_info, init_distributed
    out = Path(job.out)
    if (out / marker).is_file():
        return None
    train_ds, val_ds = task.load_data(job.data)
    if job.threads:
        torch.set_num_threads(job.threads)
    init_distributed()
    rank, _ = dist_info()
    return out, train_ds, val_ds, rank


def _warn(message: str) -> None:
    warnings.warn(message, stacklevel=3)


# -- search -------------------------------------------------------------------------------------

def run_search(job: SearchJob, task: Task, warn: Callable[[str], None] = _warn) -> Outcome:
    """A spec (and the searched weights) for ``job.budget`` with ``job.strategy``, from the teacher."""
    from .io import save_model
    from .loop import find_backbone
    from .prune import PruneConfig, bake_masks
    from .search import SearchConfig
    from .strategies import STRATEGIES, StrategyInputs, run_strategy

    if job.strategy not in STRATEGIES:
        raise PipelineError(f"unknown strategy {job.strategy!r}; choose from {', '.join(STRATEGIES)}")
    needs_budget = STRATEGIES[job.strategy].needs_budget
    if needs_budget and job.budget is None:
        raise PipelineError(f"--budget is required for strategy {job.strategy}")
    if job.budget is not None and not 0 < job.budget <= 1:
        raise PipelineError(f"--budget must be in (0, 1], got {job.budget}")
    if job.teacher is not None and not Path(job.teacher).is_file():
        raise PipelineError(f"--teacher {job.teacher}: file not found")
    check_steps(job.steps)
    check_out(job.out)
    state, t_backbone, t_desc = load_teacher(job.teacher)
    backbone = job.backbone or t_backbone
    if backbone is None:
        raise PipelineError("give --backbone NAME (or a --teacher checkpoint that names its backbone)")
    check_backbone(backbone)
    if t_backbone and job.backbone and t_backbone != job.backbone:
        raise PipelineError(f"--teacher was trained with backbone {t_backbone}, not {job.backbone}")
    over = config_overrides(job.overrides, PruneConfig if job.strategy == "prune" else SearchConfig)
    if job.budget_metric not in ("macs", "latency"):
        raise PipelineError(f"--budget-metric must be macs or latency, got {job.budget_metric!r}")
    lat = _latency_budget(job, backbone) if job.budget_metric == "latency" and needs_budget else None
    if needs_budget and lat is None:
        _check_reachable(backbone, job.budget, job.input_size)
    started = _start(job, task, "spec.json")
    if started is None:
        marker = Path(job.out) / "spec.json"
        return Outcome(marker, f"{marker} exists: search already done (delete it to search again)", True)
    out, train_ds, val_ds, rank = started
    seed = job.seed if job.seed is not None else 0
    torch.manual_seed(seed)
    net = build_model(task, backbone, state)
    if state is None and rank == 0:
        warn("no --teacher; searching from random weights")
    # The order of what draws from the global RNG (the model above, this loader) is part of the result.
    val = fixed_batches(val_ds if val_ds is not None else train_ds, job.batch_size, job.val_batches)
    out.mkdir(parents=True, exist_ok=True)
    inp = StrategyInputs(model=net, loss_fn=task.loss_fn,
                         train_batches=task.train_batches(train_ds, job.batch_size, seed, job.workers),
                         val_batches=val, seed=seed, steps=job.steps, out_dir=out, progress=job.progress,
                         provenance={"data": str(job.data), "teacher": t_desc, "batch_size": job.batch_size,
                                     **(lat.provenance() if lat else {})},
                         input_size=job.input_size, backbone_name=backbone, overrides=over,
                         # with a latency budget the selection weighs measured time; the spec's budget stays MACs
                         budget=lat.select_budget if lat else (job.budget if job.budget is not None else 1.0),
                         select_costs=lat.select_costs if lat else None)
    t0 = time.time()
    res = run_strategy(job.strategy, inp)
    if rank != 0:
        return Outcome(out / "spec.json", None)
    if res.masks is not None:
        bake_masks(find_backbone(net), res.masks)
    if lat:
        res.spec.provenance["latency_share"] = round(lat.share(res.spec.units), 4)
    meta = {"stage": "search", "strategy": job.strategy, "teacher": t_desc, "data": str(job.data),
            "wall_time_s": round(time.time() - t0, 1), **res.info}
    save_model(out / "model.pt", net, res.spec, meta)
    res.spec.save(out / "spec.json")  # written last: its presence marks the search as done
    real = res.info.get("pruned_budget", res.spec.budget)
    if lat:
        return Outcome(out / "spec.json", f"{job.strategy}: measured time {res.spec.provenance['latency_share']:.4f} of FP "
                                          f"(target {job.budget}), MAC budget {real:.4f} -> {out / 'spec.json'}")
    return Outcome(out / "spec.json", f"{job.strategy}: budget {real:.4f} (target {job.budget}) -> {out / 'spec.json'}")


def _latency_budget(job: SearchJob, backbone: str):
    """The LatencyBudget of a latency-metric search (BudgetError below the all-binary time); the table
    is measured once per machine and cached."""
    from backbones import latency

    from .latency_budget import latency_budget
    if job.strategy == "prune":
        raise PipelineError("--budget-metric latency: prune removes channels, which a per-unit FP/binary time "
                            "table does not describe; use macs")
    return latency_budget(latency.table(backbone, job.input_size, threads=job.latency_threads), job.budget)


# -- fine-tuning -----------------------------------------------------------------------------------

def run_finetune(job: FinetuneJob, task: Task) -> Outcome:
    """The spec's B2NN trained from the teacher's weights with distillation from the teacher."""
    from backbones import Spec

    from .finetune import FinetuneConfig, finetune
    from .io import save_model
    from .loop import find_backbone
    from .prune import attach_masks, bake_masks, masks_from_spec

    if not job.teacher:
        raise PipelineError("--teacher CKPT is required: fine-tuning starts from the FP teacher's weights")
    if not Path(job.teacher).is_file():
        raise PipelineError(f"--teacher {job.teacher}: file not found")
    spec = Spec.load(job.spec)  # SpecError: one line naming the file
    check_steps(job.steps)
    check_out(job.out)
    state, t_backbone, t_desc = load_teacher(job.teacher)
    if t_backbone and t_backbone != spec.backbone:
        raise PipelineError(f"spec is for backbone {spec.backbone} but --teacher was trained with {t_backbone}")
    check_backbone(spec.backbone)
    kw = config_overrides(job.overrides, FinetuneConfig)
    for k in ("steps", "lr", "seed"):  # the job's own fields win over overrides
        if getattr(job, k) is not None:
            kw[k] = getattr(job, k)
    if job.distill is not None:
        kw.update({"distill_weight": 0.0} if job.distill == "none" else {"distill": job.distill})
    cfg = FinetuneConfig(**kw)
    started = _start(job, task, "model.pt")
    if started is None:
        marker = Path(job.out) / "model.pt"
        return Outcome(marker, f"{marker} exists: fine-tuning already done (delete it to run again)", True)
    out, train_ds, val_ds, rank = started
    student = build_model(task, spec.backbone, state)
    teacher = build_model(task, spec.backbone, state)
    student.backbone.set_modes(spec.units)
    masks = masks_from_spec(spec, student.backbone)
    handles = attach_masks(student.backbone, masks) if masks else []
    val_fn = None
    if val_ds is not None:
        held_out = fixed_batches(val_ds, job.batch_size, job.val_batches)
        val_fn = lambda m: task.validate(m, held_out)  # noqa: E731
    summary = finetune(student, task.loss_fn, task.train_batches(train_ds, job.batch_size, cfg.seed, job.workers),
                       cfg, out, teacher=teacher, val_fn=val_fn, progress=job.progress)
    if rank != 0:
        return Outcome(out / "model.pt", None)
    for h in handles:
        h.remove()
    if masks:
        bake_masks(find_backbone(student), masks)
    meta = {"stage": "finetune", "teacher": t_desc, "data": str(job.data), "spec_file": str(job.spec),
            "finetune": {**vars(cfg), "batch_size": job.batch_size},
            "pruned_budget": spec.provenance.get("pruned_budget"), **summary}
    (out / "result.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    spec.save(out / "spec.json")
    save_model(out / "model.pt", student, spec, meta)  # written last: marks the run as done
    return Outcome(out / "model.pt", f"fine-tuned {spec.provenance.get('strategy', '?')} at budget "
                                     f"{spec.provenance.get('pruned_budget', spec.budget):.4f}: {summary} -> "
                                     f"{out / 'model.pt'}")
