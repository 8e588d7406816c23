"""A per-unit summary of a (B)2NN, in the spirit of larq.models.summary."""
from __future__ import annotations

from .cost import BINARY_DIVISOR, budget_of, cost_of, unit_costs, xcorr_macs
from .registry import create_backbone
from .spec import Spec

FP_BITS = 32


def summarize(backbone: str, spec: Spec | None = None, input_size: int | None = None) -> dict:
    """Everything the summary table shows, as a JSON-able dict."""
    model = create_backbone(backbone)
    if spec is not None and spec.backbone != backbone:
        raise ValueError(f"spec is for backbone {spec.backbone!r}, not {backbone!r}")
    size = input_size or (spec.input_size if spec else model.search_size)
    costs = unit_costs(model, size)
    macs = {n: c.macs for n, c in costs.items()}
    modes = dict(spec.units) if spec else {n: "fp" for n in costs}
    cost = cost_of(macs, modes)
    units, params_fp, params_bin, bits = [], 0, 0, 0
    for n, c in costs.items():
        unit = model.units()[n]
        eff = c.macs if modes[n] == "fp" else c.macs / BINARY_DIVISOR
        # At inference BN folds into a per-channel scale+bias; a binary unit also
        # keeps one input threshold per channel. Weights: 32 bits (FP) or 1 bit.
        cout, cin = c.out_shape[0], c.in_shape[0]
        if modes[n] == "fp":
            wbits, extra = c.params * FP_BITS, cout * FP_BITS
            params_fp += c.params
        else:
            wbits, extra = c.params, (2 * cout + cin) * FP_BITS
            params_bin += c.params
        bits += wbits + extra
        units.append({"name": n, "mode": modes[n], "in_shape": list(c.in_shape), "out_shape": list(c.out_shape),
                      "kernel": c.kernel, "stride": c.stride, "groups": c.groups,
                      "macs": c.macs, "cost": float(eff), "share": float(eff / cost), "params": c.params,
                      "quantizer": None if modes[n] == "fp" else f"{unit.act_quantizer}/{unit.weight_quantizer}"})
    z_feat = unit_costs(model, model.exemplar_size)[list(costs)[-1]].out_shape
    x_feat = costs[list(costs)[-1]].out_shape
    return {"backbone": backbone, "input_size": size, "units": units,
            "total_fp_macs": int(sum(macs.values())), "cost": float(cost), "budget": budget_of(macs, modes),
            "params_fp": params_fp, "params_bin": params_bin, "size_bits": int(bits),
            "size_bits_all_fp": int(sum(c.params + c.out_shape[0] for c in costs.values()) * FP_BITS),
            "head": {"kind": "siamfc-xcorr", "exemplar_size": model.exemplar_size,
                     "exemplar_feat": list(z_feat), "search_feat": list(x_feat),
                     "macs": xcorr_macs(z_feat, x_feat)},
            "provenance": dict(spec.provenance) if spec else {}}


def add_latency(s: dict, tab: dict) -> dict:
    """Add a latency table's measured times to a summary: per unit (FP, binary, in its mode) and in total."""
    total_fp = total = 0.0
    for u in s["units"]:
        r = tab["units"][u["name"]]
        u["fp_ms"], u["bin_ms"] = round(r["fp_ms"], 4), round(r["bin_ms"], 4)
        u["ms"] = u["fp_ms"] if u["mode"] == "fp" else u["bin_ms"]
        total_fp += u["fp_ms"]
        total += u["ms"]
    s["latency"] = {"ms": round(total, 4), "fp_ms": round(total_fp, 4), "share": total / total_fp,
                    **{k: tab[k] for k in ("cpu", "isa", "threads", "measured")}}
    return s


def _human(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return f"{n:.0f}"


def _shape(t) -> str:
    return "x".join(str(v) for v in t)


def format_summary(s: dict) -> str:
    lat = s.get("latency")
    head = f"{'unit':<22}{'mode':<5}{'in':>14}{'out':>14}{'k/s/g':>9}{'MACs':>10}{'cost':>10}{'share':>8}"
    if lat:
        head += f"{'FP ms':>8}{'bin ms':>8}{'ms':>8}"
    lines = [f"{s['backbone']} at {s['input_size']}x{s['input_size']}", head, "-" * len(head)]
    for u in s["units"]:
        line = (f"{u['name']:<22}{u['mode']:<5}{_shape(u['in_shape']):>14}{_shape(u['out_shape']):>14}"
                f"{str(u['kernel']) + '/' + str(u['stride']) + '/' + str(u['groups']):>9}"
                f"{_human(u['macs']):>10}{_human(u['cost']):>10}"
                f"{100 * u['share']:>7.1f}%")
        if lat:
            line += f"{u['fp_ms']:>8.3f}{u['bin_ms']:>8.3f}{u['ms']:>8.3f}"
        lines.append(line)
    lines.append("-" * len(head))
    nbin = sum(u["mode"] == "bin" for u in s["units"])
    lines += [
        f"units: {len(s['units'])} ({nbin} binary, {len(s['units']) - nbin} FP)",
        f"FP MACs: {_human(s['total_fp_macs'])}   effective cost: {_human(s['cost'])}   budget: {s['budget']:.4f}",
        f"parameters: {s['params_fp'] + s['params_bin']:,} ({s['params_bin']:,} binary at 1 bit)",
        f"model size: {s['size_bits'] / 8 / 1024:.1f} KiB (all FP: {s['size_bits_all_fp'] / 8 / 1024:.1f} KiB)",
        f"head (FP, outside the budget): {s['head']['kind']} {_human(s['head']['macs'])} MACs "
        f"({'x'.join(map(str, s['head']['exemplar_feat']))} * {'x'.join(map(str, s['head']['search_feat']))})",
    ]
    if lat:
        lines.append(f"measured time of the units: {lat['ms']:.2f} ms of {lat['fp_ms']:.2f} ms all FP = "
                     f"{lat['share']:.3f} (latency budget) on {lat['cpu']}, {lat['isa']} path, {lat['threads']} "
                     f"thread(s), measured {lat['measured']}")
    if s.get("provenance"):
        lines.append("provenance: " + ", ".join(f"{k}={v}" for k, v in s["provenance"].items()))
    return "\n".join(lines)
