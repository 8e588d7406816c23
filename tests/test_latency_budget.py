"""Latency-aware budget: the measured table, its cache, and the exact mapping onto the MAC machinery."""
import itertools
import json

import numpy as np
import pytest

from backbones import budget_of, latency
from mixbin.latency_budget import latency_budget, latency_share
from mixbin.select import select_modes
from test_mixbin_toy import TINY


def synthetic_table(n=8, seed=0):
    rng = np.random.default_rng(seed)
    fp = rng.uniform(0.1, 3.0, n)
    ratio = rng.uniform(0.8, 6.0, n)  # some units are *slower* binary (ratio < 1): they must never be binarized for speed
    ratio[0] = 0.8  # at least one unit whose packed twin is slower (a tiny layer)
    return {"units": {f"u{i}": {"fp_ms": float(fp[i]), "bin_ms": float(fp[i] / ratio[i])} for i in range(n)}}


@pytest.mark.parametrize("b", [0.35, 0.5, 0.8])
def test_mapping_accepts_exactly_the_assignments_within_the_latency_budget(b):
    tab = synthetic_table()
    lb = latency_budget(tab, b)
    names = list(tab["units"])
    checked = 0
    for bits in itertools.product(("fp", "bin"), repeat=len(names)):
        modes = dict(zip(names, bits))
        lat = latency_share(tab, modes)
        if abs(lat - b) < 1e-5:  # the pseudo-MACs are integers (ns): skip the rounding boundary
            continue
        assert (budget_of(lb.select_costs, modes) <= lb.select_budget) == (lat <= b), (modes, lat)
        checked += 1
    assert checked > 200


def test_selection_under_the_mapped_budget_is_the_closest_latency_below_it():
    tab = synthetic_table(seed=3)
    b = 0.5
    lb = latency_budget(tab, b)
    names = list(tab["units"])
    sel = select_modes(lb.select_costs, lb.select_budget, {n: 0.0 for n in names}, tol=0.0)
    best = max(s for bits in itertools.product(("fp", "bin"), repeat=len(names))
               if (s := latency_share(tab, dict(zip(names, bits)))) <= b)
    assert latency_share(tab, sel.modes) <= b + 1e-6
    assert abs(latency_share(tab, sel.modes) - best) < 1e-4
    # A unit whose packed twin is slower never pays to binarize: binary it would cost what FP costs.
    slow = [n for n, r in tab["units"].items() if r["bin_ms"] >= r["fp_ms"]]
    assert slow and all(lb.select_costs[n] == 1 for n in slow)


def test_measured_table_and_its_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("B2TRACK_CACHE", str(tmp_path))
    t = latency.table(TINY, 32, threads=1, repeats=3)
    assert set(t["units"]) == set(__import__("backbones").create_backbone(TINY).unit_names())
    assert all(r["fp_ms"] > 0 and r["bin_ms"] > 0 and r["macs"] > 0 for r in t["units"].values())
    assert t["cpu"] and t["isa"] in ("avx512", "avx2", "scalar", "torch") and t["threads"] == 1
    files = list((tmp_path / "latency").glob("*.json"))
    assert len(files) == 1 and t["isa"] in files[0].name
    again = latency.table(TINY, 32, threads=1)  # read from the cache: the same numbers, no new measurement
    assert again == json.loads(files[0].read_text()) == t
    files[0].write_text("{broken")  # a damaged cache is measured again, not a crash
    assert set(latency.table(TINY, 32, threads=1, repeats=2)["units"]) == set(t["units"])
