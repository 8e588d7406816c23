"""Measured time of every unit on this CPU, FP and packed binary: the latency table.

MACs say what a unit costs in arithmetic; the clock says what it costs here.
A binary unit on the packed kernels is 5-20x faster than its FP twin on wide
3x3 layers but gains little on a 3-channel stem, and the ratio moves with the
ISA path (AVX-512 / AVX2 / scalar). The table is measured once per machine,
backbone, input size and thread count and cached as JSON with the CPU's name
and the kernel's ISA path in it; ``mixbin summary --latency`` shows it and
``mixbin search --budget-metric latency`` searches under it.

Each unit is timed as the tracker runs it: its exported inference twin (BN
folded; channels-last input; the binary one thresholds, packs and convolves),
on an input of the unit's real shape, FP and binary interleaved (so load
drift hits both alike), per-thread CPU time, median of ``repeats``.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from . import kernels
from .cost import unit_costs
from .export import export_unit
from .files import atomic_write_text
from .registry import create_backbone

TABLE_FORMAT = "b2track-latency/1"


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def isa_path() -> str:
    """The binary kernel's path here: avx512 / avx2 / scalar, or 'torch' without the compiled library."""
    return (kernels.kernel_isa() or "torch") if kernels.kernel_path() == "packed" else "torch"


def signature(threads: int) -> dict:
    return {"cpu": cpu_name(), "isa": isa_path(), "threads": int(threads), "torch": torch.__version__}


def cache_path(backbone: str, input_size: int, threads: int) -> Path:
    root = Path(os.environ.get("B2TRACK_CACHE") or Path.home() / ".cache" / "b2track") / "latency"
    sig = signature(threads)
    key = hashlib.sha256(json.dumps(sig, sort_keys=True).encode()).hexdigest()[:12]
    return root / f"{backbone}-{input_size}px-{sig['isa']}-t{threads}-{key}.json"


def interleaved(fns: dict, repeats: int, clock: str = "cpu", warmup: int = 2, stat: str = "median") -> dict:
    """Median (or best) seconds of each callable, run round robin so that load drift hits all alike.

    ``clock``: "cpu" is the calling thread's CPU time (ignores preemption on a shared machine;
    meaningful for one thread), "wall" is wall time.
    """
    now = time.thread_time if clock == "cpu" else time.perf_counter
    pick = {"median": statistics.median, "min": min}[stat]
    for f in fns.values():
        for _ in range(warmup):
            f()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t = now()
            f()
            times[k].append(now() - t)
    return {k: pick(v) for k, v in times.items()}


@torch.inference_mode()
def measure(backbone: str, input_size: int | None = None, repeats: int = 15, threads: int = 1) -> dict:
    """The latency table of ``backbone``: {unit: {"fp_ms", "bin_ms", "macs"}} plus the machine's signature."""
    model = create_backbone(backbone).eval()
    size = int(input_size or model.search_size)
    units = model.units()
    old = torch.get_num_threads(), kernels.get_num_threads()
    torch.set_num_threads(threads)
    kernels.set_num_threads(threads)
    try:
        rows = {}
        gen = torch.Generator().manual_seed(0)
        for name, c in unit_costs(model, size).items():
            u = units[name]
            x = torch.randn((1, *c.in_shape), generator=gen).contiguous(memory_format=torch.channels_last)
            twins = {}
            for mode in ("fp", "bin"):
                u.mode = mode
                twins[mode] = export_unit(u).eval()
            u.mode = "fp"
            t = interleaved({m: (lambda m=m: twins[m](x)) for m in twins}, repeats)
            rows[name] = {"fp_ms": t["fp"] * 1e3, "bin_ms": t["bin"] * 1e3, "macs": c.macs}
    finally:
        torch.set_num_threads(old[0])
        kernels.set_num_threads(old[1])
    return {"format": TABLE_FORMAT, "backbone": backbone, "input_size": size, **signature(threads),
            "repeats": repeats, "measured": datetime.datetime.now().isoformat(timespec="seconds"), "units": rows}


def table(backbone: str, input_size: int | None = None, threads: int = 1, refresh: bool = False,
          repeats: int = 15) -> dict:
    """The cached table for this machine (measured and written on first use, or with ``refresh``)."""
    size = int(input_size or create_backbone(backbone).search_size)
    path = cache_path(backbone, size, threads)
    if not refresh and path.is_file():
        try:
            t = json.loads(path.read_text())
            if t.get("format") == TABLE_FORMAT and set(t.get("units", {})) == set(create_backbone(backbone).unit_names()):
                return t
        except (OSError, ValueError):
            pass  # damaged cache: measure again
    t = measure(backbone, size, repeats, threads)
    atomic_write_text(path, json.dumps(t, indent=1) + "\n")
    return t


def latency_of(tab: dict, modes: dict[str, str]) -> float:
    """Milliseconds of the units under ``modes`` (a binary unit never counts slower than its FP twin,
    since the search would never binarize it for speed)."""
    u = tab["units"]
    return sum(u[n]["fp_ms"] if m == "fp" else min(u[n]["bin_ms"], u[n]["fp_ms"]) for n, m in modes.items())
