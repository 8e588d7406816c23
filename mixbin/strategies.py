"""One entry point for every strategy: a teacher-initialised model in, a spec out.

    mixbin | random | iterative | first-last | sensitivity | prune | fp | all-binary

``fp`` and ``all-binary`` are references and ignore the budget (their budgets
are 1 and about 1/64). ``prune`` returns an all-FP spec whose provenance
carries the kept channels and the real (pruned) budget.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from backbones import Spec, unit_costs
from backbones.harness import JsonLog, batches_from

from . import baselines
from .calibrate import init_binary_paths
from .loop import find_backbone
from .measure import assignment_loss, binarization_error
from .prune import PruneConfig, prune_search
from .search import SearchConfig, search
from .select import capacity

STRATEGIES = ("mixbin", "random", "iterative", "first-last", "sensitivity", "prune", "fp", "all-binary")
NEEDS_BUDGET = ("mixbin", "random", "iterative", "first-last", "sensitivity", "prune")


@dataclass
class StrategyInputs:
    model: torch.nn.Module  # teacher weights; changed in place (calibration, searched weights)
    loss_fn: object
    train_batches: object  # iterable or start-step callable
    val_batches: list = field(default_factory=list)  # fixed held-out batches (iterative)
    budget: float = 0.3
    seed: int = 0
    steps: int | None = None  # search steps for mixbin / prune (None: their defaults)
    out_dir: Path | None = None
    progress: bool = False
    provenance: dict = field(default_factory=dict)  # e.g. {"data": "data_cache/pairs"}
    input_size: int | None = None
    backbone_name: str | None = None
    calib_batches: int = 8
    sensitivity_batches: int = 4
    iterative_direction: str = "add"
    overrides: dict = field(default_factory=dict)  # SearchConfig / PruneConfig fields


@dataclass
class StrategyResult:
    spec: Spec
    masks: dict | None = None  # channel masks (prune only)
    info: dict = field(default_factory=dict)


def run_strategy(name: str, inp: StrategyInputs) -> StrategyResult:
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")
    backbone = find_backbone(inp.model)
    bname = inp.backbone_name or backbone.name
    size = inp.input_size or backbone.search_size
    macs = {n: c.macs for n, c in unit_costs(backbone, size).items()}
    if name in NEEDS_BUDGET:
        capacity(macs, inp.budget)  # BudgetError now rather than after a long measurement
    t0 = time.perf_counter()
    prov = {"strategy": name, "seed": inp.seed, **inp.provenance}
    log = JsonLog(Path(inp.out_dir) / "log.jsonl" if inp.out_dir is not None and name not in ("mixbin", "prune") else None)

    def done(sel, extra=None) -> StrategyResult:
        info = {**(extra or {}), "wall_time_s": round(time.perf_counter() - t0, 1)}
        spec = Spec.build(bname, sel.modes, size, {**prov, **sel.provenance(inp.budget), **info}, macs)
        log(event="selected", budget=spec.budget, units=spec.units, time=time.time())
        log.close()
        return StrategyResult(spec, None, info)

    def calibrate():
        init_binary_paths(inp.model, inp.loss_fn, batches_from(inp.train_batches, 0), inp.calib_batches)

    def sensitivity():
        calibrate()
        it = batches_from(inp.train_batches, 0)
        errs = binarization_error(inp.model, inp.loss_fn, it, inp.sensitivity_batches)
        log(event="binarization_error", errors=errs, time=time.time())
        return errs

    if name in ("fp", "all-binary"):
        modes = baselines.fp_modes(macs) if name == "fp" else baselines.all_binary_modes(macs)
        spec = Spec.build(bname, modes, size, {**prov, "note": "reference; budget target does not apply"}, macs)
        log.close()
        return StrategyResult(spec)
    if name == "random":
        return done(baselines.random_modes(macs, inp.budget, inp.seed))
    if name == "sensitivity":
        errs = sensitivity()
        return done(baselines.sensitivity_modes(macs, inp.budget, errs), {"binarization_error": errs})
    if name == "first-last":
        errs = sensitivity()
        return done(baselines.first_last_modes(macs, inp.budget, errs), {"binarization_error": errs})
    if name == "iterative":
        calibrate()
        val = list(inp.val_batches) or list(itertools.islice(batches_from(inp.train_batches, 0), 4))
        sel, hist = baselines.iterative_modes(macs, inp.budget, assignment_loss(inp.model, inp.loss_fn, val),
                                              inp.iterative_direction, log=lambda **r: log(**r, time=time.time()))
        return done(sel, {"greedy": hist, "direction": inp.iterative_direction})
    if name == "mixbin":
        calibrate()
        kw = {"budget": inp.budget, "seed": inp.seed, "provenance": inp.provenance, **inp.overrides}
        if inp.steps is not None:
            kw["steps"] = inp.steps
        res = search(inp.model, inp.loss_fn, inp.train_batches, SearchConfig(**kw), inp.out_dir, inp.progress, size, bname)
        return StrategyResult(res.spec, None, {"wall_time_s": round(res.wall_time_s, 1), "expected_cost": res.expected_cost})
    # prune
    kw = {"budget": inp.budget, "seed": inp.seed, "provenance": inp.provenance, **inp.overrides}
    if inp.steps is not None:
        kw["steps"] = inp.steps
    res = prune_search(inp.model, inp.loss_fn, inp.train_batches, PruneConfig(**kw), inp.out_dir, inp.progress, size, bname)
    return StrategyResult(res.spec, res.masks, {"wall_time_s": round(res.wall_time_s, 1), "pruned_budget": res.budget})
