"""MixBin search: gate every unit, train gates (and weights) under a budget, threshold.

Each unit outputs y = z·FP(x) + (1 - z)·BIN(x); the loss is

    task(model, batch) + w_budget·(expected_cost(z) - b)^2 + w_crisp·crispness(z)

with the gates' steepness (beta, gamma) and the crispness weight growing over
the run, so that the gates end crisp and the expected cost near b. Thresholding
(``select.select_modes``) then picks the FP set whose real budget is <= b,
within ``select_tol`` of the closest achievable (default: the contract's
[b - 0.02, b]), agreeing most with the gates.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import torch

from backbones import Spec, unit_costs
from backbones.harness import Run, cycle, init_distributed, lr_at, ramp, sync_buffers, wrap_ddp

from .gates import UnitGates, crisp_weights, gates_cost, uniform_gate_for_budget
from .loop import find_backbone, gate_step, split_output
from .select import Selection, capacity, select_modes


@dataclass
class SearchConfig:
    budget: float = 0.3
    steps: int = 600  # ~30 min at batch 16 on this CPU; gates were crisp by ~260 steps on SiamFC pairs
    lr_gates: float = 0.05  # Adam on theta: a few hundred steps cross the logistic's range
    lr_weights: float = 1e-4  # weights adapt to the mixture; 0 freezes them (gates only)
    weight_decay: float = 0.0
    warmup_frac: float = 0.05  # weight lr warm-up
    w_budget: float = 200.0  # 0.02 off budget on a 5%-share unit pulls as hard as a 0.4 task-loss gradient
    crispness: str = "cost"  # cost: sum share^2·z(1-z) | corners: sum z(1-z) | chipnet: mean (z-m)^2
    w_crisp_start: float = 0.0
    w_crisp_end: float = 240.0  # 1.2 x w_budget: gates snap (> 1) yet flip back when far off budget (see gates.py)
    crisp_from: float = 0.3  # fraction of the run where crispness starts to ramp
    beta: tuple = (1.0, 8.0)  # logistic steepness, geometric ramp over the run
    gamma: tuple = (1.0, 12.0)  # Heaviside steepness, geometric ramp over the run
    logit_clip: float = 7.0  # |beta·theta| cap: crisp gates stay a few steps from flipping back
    init_gate: float | None = None  # None: the uniform gate whose expected cost is b
    # Thresholding keeps the gates' choice when it lies in [b - select_tol, b]; a tighter window
    # would overrule crisp gates (swap an FP unit for a binary one) to gain a few thousandths of budget.
    select_tol: float = 0.02
    grad_clip: float = 5.0
    seed: int = 0
    log_every: int = 10
    ckpt_every: int = 50
    provenance: dict = field(default_factory=dict)  # e.g. {"data": "..."}; copied into the spec


@dataclass
class SearchResult:
    spec: Spec
    gates: dict[str, float]
    expected_cost: float
    selection: Selection
    wall_time_s: float


def _schedule(cfg: SearchConfig, step: int) -> dict:
    return {"beta": ramp(step, cfg.steps, cfg.beta[0], cfg.beta[1], geometric=True),
            "gamma": ramp(step, cfg.steps, cfg.gamma[0], cfg.gamma[1], geometric=True),
            "w_crisp": ramp(step, cfg.steps, cfg.w_crisp_start, cfg.w_crisp_end, begin_frac=cfg.crisp_from)}


def search(model: torch.nn.Module, loss_fn, batches, cfg: SearchConfig, out_dir=None,
           progress: bool = False, input_size: int | None = None, backbone_name: str | None = None,
           select_costs: dict[str, int] | None = None) -> SearchResult:
    """Run the MixBin search on ``model`` (which contains a Backbone) and return a spec.

    ``batches``: an iterable or a start-step callable (see ``loop.batches_from``).
    ``out_dir``: where ``search.pt`` (resume state) and ``log.jsonl`` go; the run
    resumes from ``search.pt`` if it is there.
    ``select_costs``: per-unit costs the gates and the thresholding work with
    instead of MACs, with ``cfg.budget`` in their terms (a latency budget mapped
    by ``mixbin.latency_budget``); the spec's budget is always in MACs.
    """
    init_distributed()
    backbone = find_backbone(model)
    name = backbone_name or backbone.name
    size = input_size or backbone.search_size
    real_macs = {n: c.macs for n, c in unit_costs(backbone, size).items()}
    macs = real_macs if select_costs is None else dict(select_costs)
    capacity(macs, cfg.budget)  # raises BudgetError early for an impossible budget
    torch.manual_seed(cfg.seed)

    s0 = _schedule(cfg, 0)
    gates = UnitGates(list(macs), beta=s0["beta"], gamma=s0["gamma"])
    init = uniform_gate_for_budget(cfg.budget) if cfg.init_gate is None else cfg.init_gate
    with torch.no_grad():
        gates.theta.fill_(gates.theta_for(init))
    cw = crisp_weights(macs)
    opt_g = torch.optim.Adam(gates.parameters(), lr=cfg.lr_gates)
    weights = [p for p in model.parameters() if p.requires_grad]
    opt_w = torch.optim.AdamW(weights, lr=cfg.lr_weights, weight_decay=cfg.weight_decay) if cfg.lr_weights > 0 else None

    run = Run(out_dir, "search.pt", {"model": model, "gates": gates, "opt_gates": opt_g, "opt_weights": opt_w},
              cfg.steps, f"search b={cfg.budget}", progress, config=asdict(cfg))

    fwd = wrap_ddp(model)
    model.train()
    it = cycle(batches, run.start)
    run.begin()
    step = run.start
    try:
        while step < cfg.steps:
            sch = _schedule(cfg, step)
            gates.beta, gates.gamma = sch["beta"], sch["gamma"]
            z = gates()
            zd = gates.as_dict(z)
            backbone.set_gates(zd)
            task, _ = split_output(loss_fn(fwd, next(it)))
            cost = gates_cost(macs, zd)
            crisp = gates.crispness(cfg.crispness, cw)
            loss = task + cfg.w_budget * (cost - cfg.budget) ** 2 + sch["w_crisp"] * crisp
            gate_step(loss, gates, opt_g, opt_w, weights, cfg.grad_clip,
                      lr_at(step, cfg.steps, cfg.lr_weights, int(cfg.warmup_frac * cfg.steps), 0.1))
            with torch.no_grad():
                # Without a cap, crispness drives saturated gates ever further, so a
                # gate that snapped early could never be recalled by the budget.
                lim = cfg.logit_clip / gates.beta
                gates.theta.clamp_(-lim, lim)
            step += 1
            run.tick(task=float(task.detach()), cost=float(cost.detach()))
            if step % cfg.log_every == 0 or step == cfg.steps:
                run.log(step=step, task_loss=float(task.detach()), expected_cost=float(cost.detach()),
                        crispness=float(crisp.detach()),
                        beta=sch["beta"], gamma=sch["gamma"], w_crisp=sch["w_crisp"],
                        gates={n: round(float(v.detach()), 4) for n, v in zd.items()}, time=time.time())
            if step % cfg.ckpt_every == 0 or step == cfg.steps:
                run.save(step)
    finally:
        run.close_bar()
    wall = run.wall()
    sync_buffers(model)

    # Final gates at the final steepness, then thresholding to a real assignment.
    sch = _schedule(cfg, cfg.steps)
    gates.beta, gates.gamma = sch["beta"], sch["gamma"]
    final = gates.values()
    with torch.no_grad():
        exp_cost = float(gates_cost(macs, gates.as_dict()))
    sel = threshold(macs, cfg.budget, final, cfg.select_tol)
    backbone.set_modes(sel.modes)
    sel_prov = sel.provenance(cfg.budget)
    if select_costs is not None:  # those figures are in the select costs' terms, not the spec's MACs
        sel_prov = {f"select_{k}": v for k, v in sel_prov.items()}
    prov = {"strategy": "mixbin", "seed": cfg.seed, "steps": cfg.steps, **cfg.provenance,
            **sel_prov, "gates": {n: round(v, 4) for n, v in final.items()},
            "expected_cost": round(exp_cost, 5), "search_wall_time_s": round(wall, 1)}
    spec = Spec.build(name, sel.modes, size, prov, real_macs)
    run.log(event="selected", budget=spec.budget, units=spec.units, time=time.time())
    run.close()
    return SearchResult(spec, final, exp_cost, sel, wall)


def threshold(macs: dict[str, int], budget: float, gates: dict[str, float], tol: float = 0.02) -> Selection:
    """Gates -> FP set: real budget <= b, within ``tol`` of the closest, most in agreement with z.

    Agreement = sum over FP units of (2z - 1): a unit with z > 0.5 wants FP.
    Equal gates are broken by cost-efficiency: the score gets a tiny bonus
    for cheap units so that, other things equal, more of the network stays FP.
    """
    total = sum(macs.values())
    scores = {n: (2 * gates[n] - 1) + 1e-6 * (1 - macs[n] / total) for n in macs}
    return select_modes(macs, budget, scores, tol)
