"""Packed binary kernels vs fp32 torch: per-unit and whole-backbone timings.

    python tools/bench_kernels.py [--quick] [--clock wall|cpu] [--json out.json]

Per unit (real shapes of each backbone via unit_costs): fp32 torch conv in
NCHW and channels-last, the packed kernel from a float NHWC input (threshold
+ pack + conv + epilogue, what the exported model runs) and the conv alone on
a pre-packed input. Whole backbone: the exported all-FP network (BN folded,
best of NCHW / channels-last) against exported B2NNs at several budgets, with
each spec's Amdahl limit measured by replacing its binary units with free
stand-ins. Variants are timed interleaved (round robin); medians reported
(or best-of with --stat min).

--clock cpu times the calling thread's CPU time instead of wall time: on a
machine shared with other jobs it ignores preemption (meaningful for one
thread; with two it still counts the main thread's spin at barriers).
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform

import torch
import torch.nn as nn
import torch.nn.functional as F

from backbones import Spec, create_backbone, kernels, unit_costs
from backbones.export import PackedBinaryConv, export_backbone
from backbones.latency import interleaved

BUDGETS = (1.0, 0.5, 0.3, 0.15)


def set_threads(n: int) -> None:
    torch.set_num_threads(n)
    kernels.set_num_threads(n)


# ------------------------------------------------------------------ units --

def bench_units(name: str, size: int, threads: int, repeats: int, clock: str, stat: str) -> list[dict]:
    model = create_backbone(name)
    units = model.units()
    rows = []
    torch.manual_seed(0)
    for uname, c in unit_costs(model, size).items():
        u = units[uname]
        cin, h, w = c.in_shape
        x = torch.randn(1, cin, h, w)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        wt = torch.randn(u.out_channels, cin // u.groups, u.kernel_size, u.kernel_size)
        wt_cl = wt.contiguous(memory_format=torch.channels_last)
        pw = kernels.PackedWeights.from_weight(wt, u.groups)
        thr, sc, bi = torch.zeros(cin), torch.ones(u.out_channels), torch.zeros(u.out_channels)
        xp = kernels.pack_input(x_cl, thr, u.groups, u.padding)
        s, p, g = u.stride, u.padding, u.groups
        fns = {
            "fp32_nchw": lambda: F.conv2d(x, wt, None, s, p, 1, g),
            "fp32_cl": lambda: F.conv2d(x_cl, wt_cl, None, s, p, 1, g),
            "packed": lambda: kernels.binary_conv2d(x_cl, pw, thr, sc, bi, s, p, layout="nhwc"),
            "conv_only": lambda: kernels.conv_packed(xp, pw, s, sc, bi, layout="nhwc"),
        }
        with torch.no_grad():
            t = interleaved(fns, repeats, clock, stat=stat)
        fp = min(t["fp32_nchw"], t["fp32_cl"])
        rows.append({"backbone": name, "size": size, "threads": threads, "unit": uname,
                     "shape": f"{cin}->{u.out_channels} k{u.kernel_size} s{s} g{g} {h}x{w}",
                     "macs": c.macs, **{k: v * 1e3 for k, v in t.items()},
                     "speedup": fp / t["packed"], "speedup_conv_only": fp / t["conv_only"]})
    return rows


# --------------------------------------------------------------- backbones --

def greedy_spec(name: str, budget: float, size: int) -> Spec:
    """Hand-made spec: binarize the most expensive units first until the budget is met."""
    model = create_backbone(name)
    macs = {n: c.macs for n, c in unit_costs(model, size).items()}
    modes = {n: "fp" for n in macs}
    for n in sorted(macs, key=macs.get, reverse=True):
        if Spec.build(name, modes, size, macs=macs).budget <= budget + 1e-9:
            break
        modes[n] = "bin"
    return Spec.build(name, modes, size, {"strategy": "greedy-macs", "target": budget}, macs=macs)


class FreeUnit(nn.Module):
    """Stand-in for a binary unit that costs nothing: a cached output of the right shape. A fused
    block (backbones/export.py) reads its conv's padding and passes the epilogue's arguments; the
    cached output already holds what they would have added."""

    def __init__(self, out: torch.Tensor, padding: int):
        super().__init__()
        self.out, self.padding = out, padding

    def forward(self, x, **epilogue):
        return self.out


def amdahl_model(exported: nn.Module, spec: Spec, x: torch.Tensor) -> nn.Module:
    """The exported model with its binary units free: its time is the limit as binary -> 0."""
    import copy
    m = copy.deepcopy(exported)
    shapes = {}
    hooks = [mod.register_forward_hook(lambda mod, i, o, n=n: shapes.__setitem__(n, o))
             for n, mod in m.named_modules() if isinstance(mod, PackedBinaryConv)]
    with torch.no_grad():
        m(x)
    for h in hooks:
        h.remove()
    for n, out in shapes.items():
        parent, _, child = n.rpartition(".")
        owner = m.get_submodule(parent) if parent else m
        setattr(owner, child, FreeUnit(out, getattr(owner, child).padding))
    return m


def bench_backbone(name: str, size: int, threads: int, repeats: int, clock: str, stat: str) -> list[dict]:
    torch.manual_seed(0)
    x = torch.randn(1, 3, size, size)
    base = create_backbone(name).eval()
    fp_cl = export_backbone(base, "nhwc")
    fp_nchw = export_backbone(base, "nchw")
    rows = []
    for b in BUDGETS:
        spec = greedy_spec(name, b, size)
        base.set_modes(spec.units)
        b2_cl, b2_nchw = export_backbone(base, "nhwc"), export_backbone(base, "nchw")
        free = amdahl_model(b2_cl, spec, x)
        fns = {"fp_nhwc": lambda: fp_cl(x), "fp_nchw": lambda: fp_nchw(x), "b2nn_nhwc": lambda: b2_cl(x),
               "b2nn_nchw": lambda: b2_nchw(x), "free": lambda: free(x)}
        with torch.no_grad():
            t = interleaved(fns, repeats, clock, stat=stat)
        fp = min(t["fp_nhwc"], t["fp_nchw"])
        b2 = min(t["b2nn_nhwc"], t["b2nn_nchw"])
        limit = fp / t["free"] if spec.binary_units() else 1.0
        rows.append({"backbone": name, "size": size, "threads": threads, "target": b, "budget": spec.budget,
                     "binary_units": len(spec.binary_units()), **{k: v * 1e3 for k, v in t.items()},
                     "speedup": fp / b2, "amdahl": limit,
                     "of_limit": (fp / b2 - 1) / (limit - 1) if limit > 1.0001 else 1.0})
        base.set_all("fp")
    return rows


# -------------------------------------------------------------------- main --

def print_units(rows):
    print(f"{'backbone':14} {'size':>4} {'thr':>3} {'unit':20} {'shape':30} {'MMAC':>6} {'fp32':>8} {'fp32 CL':>8} "
          f"{'packed':>8} {'conv':>8} {'x':>6} {'x conv':>6}")
    for r in rows:
        print(f"{r['backbone']:14} {r['size']:4d} {r['threads']:3d} {r['unit']:20} {r['shape']:30} "
              f"{r['macs'] / 1e6:6.0f} "
              f"{r['fp32_nchw']:8.3f} {r['fp32_cl']:8.3f} {r['packed']:8.3f} {r['conv_only']:8.3f} "
              f"{r['speedup']:6.1f} {r['speedup_conv_only']:6.1f}")


def print_backbones(rows):
    print(f"{'backbone':14} {'size':>4} {'thr':>3} {'target':>6} {'budget':>6} {'#bin':>4} "
          f"{'FP nhwc':>8} {'FP nchw':>8} "
          f"{'B2 nhwc':>8} {'B2 nchw':>8} {'free':>8} {'x':>6} {'limit':>6} {'of lim':>6}")
    for r in rows:
        print(f"{r['backbone']:14} {r['size']:4d} {r['threads']:3d} {r['target']:6.2f} {r['budget']:6.3f} "
              f"{r['binary_units']:4d} {r['fp_nhwc']:8.2f} {r['fp_nchw']:8.2f} {r['b2nn_nhwc']:8.2f} "
              f"{r['b2nn_nchw']:8.2f} {r['free']:8.2f} {r['speedup']:6.2f} {r['amdahl']:6.2f} {r['of_limit']:6.0%}")


def sweep(bench, a, repeats) -> list[dict]:
    """The rows of ``bench`` (bench_units or bench_backbone) over every backbone x size x thread count asked for."""
    rows = []
    for name in a.backbones:
        for size in a.sizes:
            for t in a.threads:
                set_threads(t)
                rows += bench(name, size, t, repeats, a.clock, a.stat)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbones", nargs="+", default=["alexnet", "resnet16", "resnet16-half"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[127, 255])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--repeats", type=int, default=None, help="runs per variant (default 21, quick 5)")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    ap.add_argument("--stat", choices=["median", "min"], default="median",
                    help="min = best of the runs (a proxy for an idle machine when other jobs share the CPU)")
    ap.add_argument("--quick", action="store_true", help="255 input, 1 thread, 5 repeats")
    ap.add_argument("--skip-units", action="store_true")
    ap.add_argument("--skip-backbones", action="store_true")
    ap.add_argument("--json", help="also write all rows here")
    a = ap.parse_args(argv)
    if a.quick:
        a.sizes, a.threads = [255], [1]
    repeats = a.repeats or (5 if a.quick else 21)
    cpu = platform.processor() or platform.machine()
    try:  # Linux: the CPU's marketing name is more useful than "x86_64"
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"# {datetime.datetime.now().isoformat(timespec='seconds')}  {platform.node()}  {cpu}")
    print(f"# torch {torch.__version__}, kernel path {kernels.kernel_path()} / ISA {kernels.kernel_isa()}, "
          f"clock {a.clock}, {repeats} interleaved repeats, {a.stat} in ms")
    out = {"units": [], "backbones": []}
    if not a.skip_units:
        out["units"] = sweep(bench_units, a, repeats)
        print("\n## per unit (x = best fp32 / packed incl. packing; x conv = conv on pre-packed input)")
        print_units(out["units"])
    if not a.skip_backbones:
        out["backbones"] = sweep(bench_backbone, a, repeats)
        print("\n## whole backbone (x = best FP / best B2NN; limit = Amdahl with binary units free; "
              "of lim = (x-1)/(limit-1))")
        print_backbones(out["backbones"])
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
