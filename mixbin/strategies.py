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
from typing import Callable

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
    # Per-unit costs the selection works with instead of MACs, ``budget`` in their terms (a latency
    # budget: mixbin.latency_budget); the spec's own budget stays in MACs. Not for prune.
    select_costs: dict | None = None


@dataclass
class StrategyResult:
    spec: Spec
    masks: dict | None = None  # channel masks (prune only)
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Strategy:
    name: str
    help: str  # one line, shown by ``mixbin search --help``
    needs_budget: bool
    make: Callable[["_Job"], StrategyResult]


STRATEGIES: dict[str, Strategy] = {}  # in registration order: the order of --help and of the tables


def strategy(name: str, help: str, needs_budget: bool = True):
    """Register ``fn(job) -> StrategyResult`` under ``name``."""
    def deco(fn):
        STRATEGIES[name] = Strategy(name, help, needs_budget, fn)
        return fn
    return deco


def needs_budget(name: str) -> bool:
    return STRATEGIES[name].needs_budget


def describe_strategies() -> str:
    return "; ".join(f"{s.name}: {s.help}" for s in STRATEGIES.values())


class _Job:
    """What every strategy gets: its inputs, the backbone's unit costs, and the shared steps."""

    def __init__(self, name: str, inp: StrategyInputs):
        backbone = find_backbone(inp.model)
        self.inp, self.name = inp, name
        self.backbone_name = inp.backbone_name or backbone.name
        self.size = inp.input_size or backbone.search_size
        self.macs = {n: c.macs for n, c in unit_costs(backbone, self.size).items()}
        self.costs = dict(inp.select_costs) if inp.select_costs is not None else self.macs  # what selection weighs
        self.prov = {"strategy": name, "seed": inp.seed, **inp.provenance}
        self.t0 = time.perf_counter()
        # mixbin and prune keep their own log.jsonl (the search's), so they get none here.
        own_log = inp.out_dir is not None and name not in ("mixbin", "prune")
        self.log = JsonLog(Path(inp.out_dir) / "log.jsonl" if own_log else None)

    def done(self, sel, extra=None) -> StrategyResult:
        """The spec of a selection, its provenance and wall time; logged as selected."""
        info = {**(extra or {}), "wall_time_s": round(time.perf_counter() - self.t0, 1)}
        sel_prov = sel.provenance(self.inp.budget)
        if self.inp.select_costs is not None:  # those figures are in the select costs' terms, not MACs
            sel_prov = {f"select_{k}": v for k, v in sel_prov.items()}
        spec = Spec.build(self.backbone_name, sel.modes, self.size, {**self.prov, **sel_prov, **info}, self.macs)
        self.log(event="selected", budget=spec.budget, units=spec.units, time=time.time())
        return StrategyResult(spec, None, info)

    def calibrate(self) -> None:
        inp = self.inp
        init_binary_paths(inp.model, inp.loss_fn, batches_from(inp.train_batches, 0), inp.calib_batches)

    def sensitivity(self) -> dict[str, float]:
        self.calibrate()
        it = batches_from(self.inp.train_batches, 0)
        errs = binarization_error(self.inp.model, self.inp.loss_fn, it, self.inp.sensitivity_batches)
        self.log(event="binarization_error", errors=errs, time=time.time())
        return errs

    def search_config(self) -> dict:
        kw = {"budget": self.inp.budget, "seed": self.inp.seed, "provenance": self.inp.provenance, **self.inp.overrides}
        if self.inp.steps is not None:
            kw["steps"] = self.inp.steps
        return kw


def run_strategy(name: str, inp: StrategyInputs) -> StrategyResult:
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")
    job = _Job(name, inp)
    if inp.select_costs is not None and name == "prune":
        raise ValueError("prune removes channels: its cost is not a per-unit FP/binary table; use MACs")
    if STRATEGIES[name].needs_budget:
        capacity(job.costs, inp.budget)  # BudgetError now rather than after a long measurement
    try:
        return STRATEGIES[name].make(job)
    finally:
        job.log.close()


@strategy("mixbin", "MixBin: gated FP/binary mixture searched under the budget, then thresholded")
def _mixbin(job: _Job) -> StrategyResult:
    job.calibrate()
    inp = job.inp
    res = search(inp.model, inp.loss_fn, inp.train_batches, SearchConfig(**job.search_config()), inp.out_dir,
                 inp.progress, job.size, job.backbone_name, select_costs=inp.select_costs)
    return StrategyResult(res.spec, None, {"wall_time_s": round(res.wall_time_s, 1), "expected_cost": res.expected_cost})


@strategy("random", "random unit assignments that meet the budget (one per seed)")
def _random(job: _Job) -> StrategyResult:
    return job.done(baselines.random_modes(job.costs, job.inp.budget, job.inp.seed))


@strategy("iterative", "greedy: return to FP the unit with the best validation gain per cost until the budget is used")
def _iterative(job: _Job) -> StrategyResult:
    job.calibrate()
    inp = job.inp
    val = list(inp.val_batches) or list(itertools.islice(batches_from(inp.train_batches, 0), 4))
    sel, hist = baselines.iterative_modes(job.costs, inp.budget, assignment_loss(inp.model, inp.loss_fn, val),
                                          inp.iterative_direction, log=lambda **r: job.log(**r, time=time.time()))
    return job.done(sel, {"greedy": hist, "direction": inp.iterative_direction})


@strategy("first-last", "the classic BNN rule: first and last units FP, then by binarization error per cost")
def _first_last(job: _Job) -> StrategyResult:
    errs = job.sensitivity()
    return job.done(baselines.first_last_modes(job.costs, job.inp.budget, errs), {"binarization_error": errs})


@strategy("sensitivity", "units ranked by binarization error weighed by cost (Hybrid Binary Networks)")
def _sensitivity(job: _Job) -> StrategyResult:
    errs = job.sensitivity()
    return job.done(baselines.sensitivity_modes(job.costs, job.inp.budget, errs), {"binarization_error": errs})


@strategy("prune", "structured channel pruning of the FP network to the same cost (ChipNet-style)")
def _prune(job: _Job) -> StrategyResult:
    inp = job.inp
    res = prune_search(inp.model, inp.loss_fn, inp.train_batches, PruneConfig(**job.search_config()), inp.out_dir,
                       inp.progress, job.size, job.backbone_name)
    return StrategyResult(res.spec, res.masks, {"wall_time_s": round(res.wall_time_s, 1), "pruned_budget": res.budget})


def _reference(job: _Job, modes: dict) -> StrategyResult:
    spec = Spec.build(job.backbone_name, modes, job.size, {**job.prov, "note": "reference; budget target does not apply"},
                      job.macs)
    return StrategyResult(spec)


@strategy("fp", "reference: every unit FP (budget 1)", needs_budget=False)
def _fp(job: _Job) -> StrategyResult:
    return _reference(job, baselines.fp_modes(job.macs))


@strategy("all-binary", "reference: every unit binary (about 1/64)", needs_budget=False)
def _all_binary(job: _Job) -> StrategyResult:
    return _reference(job, baselines.all_binary_modes(job.macs))


NEEDS_BUDGET = tuple(n for n, s in STRATEGIES.items() if s.needs_budget)
