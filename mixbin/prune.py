"""Structured channel pruning of the FP network to a budget (the ChipNet-style baseline).

A different kind of model from a B2NN: every unit stays FP and loses output
channels instead. Each unit's output channels get gates (the logistic +
continuous Heaviside of ``gates.py``), applied by a forward hook after the
unit's BatchNorm; the loss is task + w_budget·(MACs(z)/MACs(FP) - b)^2 +
w_crisp·ChipNet crispness; then channels are kept by gate value until the
real MACs reach b.

Real MACs count pruned channels on both sides of a conv: a unit's input
channel is alive if any unit feeding it (through channel-wise ops: ReLU,
pooling, crops, residual adds) keeps that channel. Which units feed which is
found by probing, not by reading the architecture (see ``channel_producers``).
Concatenations between units are not supported.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn

from backbones import Spec, unit_costs
from backbones.harness import Run, cycle, init_distributed, lr_at, ramp, sync_buffers, wrap_ddp

from .gates import heaviside
from .loop import find_backbone, gate_step, split_output


@dataclass(frozen=True)
class UnitGeom:
    k: int
    groups: int
    cin: int
    cout: int
    hw: int  # output pixels at the budget's input size


def unit_geometry(backbone, input_size: int) -> dict[str, UnitGeom]:
    return {n: UnitGeom(c.kernel, c.groups, c.in_shape[0], c.out_shape[0], c.out_shape[1] * c.out_shape[2])
            for n, c in unit_costs(backbone, input_size).items()}


@torch.no_grad()
def channel_producers(backbone, probe_size: int | None = None) -> dict[str, list[str] | None]:
    """For each unit, the units whose output channel c reaches its input channel c unmixed.

    Probe: every unit's output is replaced by zeros, except that one unit
    emits 1 in channel 0. Channel-wise ops (ReLU, pooling, crops, adds) carry
    that 1 to the inputs of the units it feeds, in channel 0 only; the forced
    zeros stop it at the next unit. ``None`` marks a unit fed by the image
    itself (all its input channels always alive). The probe image is
    exemplar-sized by default: the smallest input the backbone is built for.
    """
    probe_size = probe_size or backbone.exemplar_size
    units = backbone.units()
    saved, was = backbone.modes(), backbone.training
    backbone.set_all("fp")
    backbone.eval()
    x = torch.rand(1, 3, probe_size, probe_size) + 0.5

    def run(source: str | None) -> dict[str, torch.Tensor]:
        seen: dict[str, torch.Tensor] = {}

        def emit(name):
            def fn(m, i, out):
                y = torch.zeros_like(out)
                if name == source:
                    y[:, 0] = 1.0
                return y
            return fn
        hooks = [u.register_forward_pre_hook(lambda m, i, n=n: seen.__setitem__(n, i[0].abs().sum(dim=(0, 2, 3)) > 0))
                 for n, u in units.items()]
        hooks += [u.register_forward_hook(emit(n)) for n, u in units.items()]
        try:
            backbone(x)
        finally:
            for h in hooks:
                h.remove()
        return seen

    try:
        image_fed = {n for n, live in run(None).items() if bool(live.any())}
        producers: dict[str, list[str] | None] = {n: (None if n in image_fed else []) for n in units}
        for src in units:
            for dst, live in run(src).items():
                if dst in image_fed or dst == src:
                    continue
                if int(live.sum()) == 1 and bool(live[0]):
                    producers[dst].append(src)
                elif bool(live.any()):
                    raise ValueError(f"channel 0 of {src} reaches {dst} at other channels: "
                                     "concatenations between units are not supported by channel pruning")
    finally:
        backbone.set_modes(saved)
        backbone.train(was)
    return producers


def masked_macs(geoms: dict[str, UnitGeom], producers: dict[str, list[str] | None],
                z: dict[str, torch.Tensor]) -> torch.Tensor:
    """MACs of the network with output-channel gates/masks ``z`` (soft: expected; 0/1: exact)."""
    total = torch.zeros((), dtype=torch.float64)
    for n, g in geoms.items():
        out = z[n].double()
        if producers[n] is not None:
            dead = torch.ones(g.cin, dtype=torch.float64)  # no producer: the input is always 0
            for p in producers[n]:
                dead = dead * (1 - z[p].double())
            alive_in = 1 - dead
        else:
            alive_in = torch.ones(g.cin, dtype=torch.float64)
        per_group = alive_in.view(g.groups, -1).sum(1) * out.view(g.groups, -1).sum(1)
        total = total + g.k * g.k * g.hw * per_group.sum()
    return total


def fp_macs(geoms: dict[str, UnitGeom]) -> int:
    return sum(g.k * g.k * g.hw * g.cin * g.cout // g.groups for g in geoms.values())


class ChannelGates(nn.Module):
    def __init__(self, geoms: dict[str, UnitGeom], init_logit: float = 3.0):
        super().__init__()
        self.names = list(geoms)
        self.theta = nn.ParameterList([nn.Parameter(torch.full((g.cout,), init_logit)) for g in geoms.values()])
        self.beta, self.gamma = 1.0, 1.0

    def logistic(self) -> list[torch.Tensor]:
        return [torch.sigmoid(self.beta * t) for t in self.theta]

    def forward(self) -> dict[str, torch.Tensor]:
        return {n: heaviside(m, self.gamma) for n, m in zip(self.names, self.logistic())}

    def crispness(self) -> torch.Tensor:
        """ChipNet's (z - m)^2, averaged over all channels."""
        m = torch.cat(self.logistic())
        return (heaviside(m, self.gamma) - m).pow(2).mean()


def attach_masks(backbone, masks: dict) -> list:
    """Multiply each unit's output by its channel mask (a tensor, or a callable giving one)."""
    def hook(name):
        def fn(m, i, out):
            mk = masks[name]() if callable(masks[name]) else masks[name]
            return out * mk.to(out.dtype).view(1, -1, 1, 1)
        return fn
    units = backbone.units()
    return [units[n].register_forward_hook(hook(n)) for n in masks]


@torch.no_grad()
def bake_masks(backbone, masks: dict[str, torch.Tensor]) -> None:
    """Zero the FP BatchNorm affine of pruned channels: a plain model then outputs exactly 0 there."""
    units = backbone.units()
    for n, mk in masks.items():
        off = ~mk.bool()
        units[n].bn.weight[off] = 0.0
        units[n].bn.bias[off] = 0.0


def threshold_channels(z: dict[str, torch.Tensor], geoms, producers, budget: float) -> tuple[dict[str, torch.Tensor], float]:
    """Keep channels by gate value (each unit keeps at least its best one) until real MACs reach b.

    Real MACs only grow as channels are added, so the longest prefix of the
    ranking that fits is found by bisection, then any later channel that
    still fits is added.
    """
    total = fp_macs(geoms)
    limit = budget * total
    masks = {n: torch.zeros(g.cout) for n, g in geoms.items()}
    ranked = []
    for n, v in z.items():
        top = int(torch.argmax(v))
        masks[n][top] = 1.0
        ranked += [(float(v[c]), n, c) for c in range(len(v)) if c != top]
    ranked.sort(key=lambda t: -t[0])

    def cost_with(k: int) -> float:
        m = {n: t.clone() for n, t in masks.items()}
        for _, n, c in ranked[:k]:
            m[n][c] = 1.0
        return float(masked_macs(geoms, producers, m))

    if float(masked_macs(geoms, producers, masks)) > limit:
        raise ValueError(f"budget {budget} is below the cost of keeping one channel per unit")
    lo, hi = 0, len(ranked)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if cost_with(mid) <= limit:
            lo = mid
        else:
            hi = mid - 1
    for _, n, c in ranked[:lo]:
        masks[n][c] = 1.0
    for _, n, c in ranked[lo:]:
        masks[n][c] = 1.0
        if float(masked_macs(geoms, producers, masks)) > limit:
            masks[n][c] = 0.0
    real = float(masked_macs(geoms, producers, masks)) / total
    return {n: m.bool() for n, m in masks.items()}, real


@dataclass
class PruneConfig:
    budget: float = 0.3
    steps: int = 600  # ~30 min at batch 16 on this CPU
    lr_gates: float = 0.05
    lr_weights: float = 1e-4
    w_budget: float = 200.0
    w_crisp_end: float = 2.0
    crisp_from: float = 0.3
    beta: tuple = (1.0, 8.0)
    gamma: tuple = (1.0, 12.0)
    init_logit: float = 3.0  # start with every channel open (z ~ 0.95)
    logit_clip: float = 7.0
    grad_clip: float = 5.0
    seed: int = 0
    log_every: int = 10
    ckpt_every: int = 50
    provenance: dict = field(default_factory=dict)


@dataclass
class PruneResult:
    spec: Spec  # all units FP; the channel masks and the real budget are in its provenance
    masks: dict[str, torch.Tensor]
    budget: float  # real MACs / FP MACs of the pruned network
    wall_time_s: float


def masks_to_json(masks: dict[str, torch.Tensor]) -> dict[str, str]:
    """Kept channels as hex bit masks (bit i = channel i), short enough for a spec file and a summary line."""
    out = {}
    for n, m in masks.items():
        v = sum(1 << i for i, keep in enumerate(m.bool().tolist()) if keep)
        out[n] = format(v, f"0{(len(m) + 3) // 4}x")
    return out


def masks_from_spec(spec: Spec, backbone) -> dict[str, torch.Tensor] | None:
    """Channel masks of a ``prune`` spec (None for a B2NN spec)."""
    kept = spec.provenance.get("kept_channels")
    if not kept:
        return None
    units = backbone.units()
    out = {}
    for n, hexmask in kept.items():
        v = int(hexmask, 16)
        out[n] = torch.tensor([bool(v >> i & 1) for i in range(units[n].out_channels)])
    return out


def prune_search(model: torch.nn.Module, loss_fn, batches, cfg: PruneConfig, out_dir=None, progress: bool = False,
                 input_size: int | None = None, backbone_name: str | None = None) -> PruneResult:
    init_distributed()
    backbone = find_backbone(model)
    backbone.set_all("fp")
    size = input_size or backbone.search_size
    geoms = unit_geometry(backbone, size)
    producers = channel_producers(backbone)
    total = fp_macs(geoms)
    torch.manual_seed(cfg.seed)
    gates = ChannelGates(geoms, cfg.init_logit)
    opt_g = torch.optim.Adam(gates.parameters(), lr=cfg.lr_gates)
    weights = [p for p in model.parameters() if p.requires_grad]
    opt_w = torch.optim.AdamW(weights, lr=cfg.lr_weights, weight_decay=0.0) if cfg.lr_weights > 0 else None

    run = Run(out_dir, "prune.pt", {"model": model, "gates": gates, "opt_gates": opt_g, "opt_weights": opt_w},
              cfg.steps, f"prune b={cfg.budget}", progress, config=asdict(cfg))

    current: dict[str, torch.Tensor] = {}
    handles = attach_masks(backbone, {n: (lambda n=n: current[n]) for n in geoms})
    fwd = wrap_ddp(model)
    model.train()
    it = cycle(batches, run.start)
    run.begin()
    step = run.start
    try:
        while step < cfg.steps:
            gates.beta = ramp(step, cfg.steps, cfg.beta[0], cfg.beta[1], geometric=True)
            gates.gamma = ramp(step, cfg.steps, cfg.gamma[0], cfg.gamma[1], geometric=True)
            w_crisp = ramp(step, cfg.steps, 0.0, cfg.w_crisp_end, begin_frac=cfg.crisp_from)
            current.update(gates())
            task, _ = split_output(loss_fn(fwd, next(it)))
            cost = (masked_macs(geoms, producers, current) / total).float()
            crisp = gates.crispness()
            loss = task + cfg.w_budget * (cost - cfg.budget) ** 2 + w_crisp * crisp
            gate_step(loss, gates, opt_g, opt_w, weights, cfg.grad_clip,
                      lr_at(step, cfg.steps, cfg.lr_weights, max(1, cfg.steps // 20), 0.1))
            with torch.no_grad():
                lim = cfg.logit_clip / gates.beta
                for t in gates.theta:
                    t.clamp_(-lim, lim)
            step += 1
            run.tick(task=float(task.detach()), cost=float(cost.detach()))
            if step % cfg.log_every == 0 or step == cfg.steps:
                run.log(step=step, task_loss=float(task.detach()), expected_cost=float(cost.detach()),
                        crispness=float(crisp.detach()), w_crisp=w_crisp, time=time.time())
            if step % cfg.ckpt_every == 0 or step == cfg.steps:
                run.save(step)
    finally:
        for h in handles:
            h.remove()
        run.close_bar()
    wall = run.wall()
    sync_buffers(model)
    with torch.no_grad():
        z = {n: v.detach() for n, v in gates().items()}
    masks, real = threshold_channels(z, geoms, producers, cfg.budget)
    prov = {"strategy": "prune", "seed": cfg.seed, "steps": cfg.steps, **cfg.provenance, "budget_target": cfg.budget,
            "pruned_budget": real, "kept_channels": masks_to_json(masks),
            "note": "FP network with pruned channels; its cost is pruned_budget, not the B2NN budget field",
            "search_wall_time_s": round(wall, 1)}
    spec = Spec.build(backbone_name or backbone.name, {n: "fp" for n in geoms}, size, prov,
                      {n: c.macs for n, c in unit_costs(backbone, size).items()})
    run.log(event="selected", pruned_budget=real, kept={n: int(m.sum()) for n, m in masks.items()}, time=time.time())
    run.close()
    return PruneResult(spec, masks, real, wall)
