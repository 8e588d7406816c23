"""Latency-aware budget: the measured table, its cache, and the exact mapping onto the MAC machinery."""
import itertools
import json

import numpy as np
import pytest

from backbones import budget_of, latency
from mixbin.latency_budget import latency_budget, latency_share
from mixbin.select import BudgetError, select_modes
from test_mixbin_toy import TINY


def synthetic_table(n=8, seed=0):
    rng = np.random.default_rng(seed)
    fp = rng.uniform(0.1, 3.0, n)
    ratio = rng.uniform(0.8, 6.0, n)  # some units are *slower* binary (ratio < 1): they must never be binarized for speed
    ratio[0] = 0.8  # at least one unit whose packed twin is slower (a tiny layer)
    return {"units": {f"u{i}": {"fp_ms": float(fp[i]), "bin_ms": float(fp[i] / ratio[i])} for i in range(n)}}


def floor_of(tab):
    return latency_share(tab, {n: "bin" for n in tab["units"]})


@pytest.mark.parametrize("frac", [0.15, 0.5, 0.8])
def test_mapping_accepts_exactly_the_assignments_within_the_latency_budget(frac):
    tab = synthetic_table()
    b = floor_of(tab) + frac * (1 - floor_of(tab))  # between all-binary and all-FP time
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
    b = floor_of(tab) + 0.4 * (1 - floor_of(tab))
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
    with pytest.raises(BudgetError, match="below the all-binary time"):
        latency_budget(tab, floor_of(tab) - 0.01)


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


def test_search_under_a_latency_budget_keeps_the_measured_time_within_it(tmp_path, monkeypatch, capsys):
    import torch

    from backbones import Spec
    from mixbin.cli import main
    from test_mixbin_cli import pairs
    from tracker.model import SiamNet
    monkeypatch.setenv("B2TRACK_CACHE", str(tmp_path / "cache"))
    (tmp_path / "data").mkdir()
    torch.save(pairs(16, 0), tmp_path / "data" / "train.pt")
    torch.manual_seed(0)
    torch.save({"model": SiamNet(TINY).state_dict(), "backbone": TINY, "step": 0}, tmp_path / "teacher.pt")
    common = ["--teacher", str(tmp_path / "teacher.pt"), "--data", str(tmp_path / "data"), "--batch-size", "4",
              "--val-batches", "1", "--fp32", "--no-progress"]
    # This machine's table, made up where it is cached: toy units are too small to time meaningfully.
    from backbones import create_backbone
    net = create_backbone(TINY)
    rng = np.random.default_rng(1)
    fake = {"format": latency.TABLE_FORMAT, "backbone": TINY, "input_size": net.search_size,
            **latency.signature(1), "measured": "test", "units": {
                n: {"fp_ms": float(f), "bin_ms": float(f / r), "macs": 1}
                for n, f, r in zip(net.unit_names(), rng.uniform(0.5, 2, 99), rng.uniform(2, 6, 99))}}
    path = latency.cache_path(TINY, net.search_size, 1)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(fake))
    main(["search", "--strategy", "random", "--budget", "0.6", "--budget-metric", "latency",
          "--out", str(tmp_path / "lat"), *common])
    spec = Spec.load(tmp_path / "lat" / "spec.json")  # validates the MAC budget against the backbone
    prov = spec.provenance
    assert prov["budget_metric"] == "latency" and prov["latency_table"]["isa"]
    tab = json.loads(path.read_text())
    assert tab == fake  # read from the cache, not measured again
    assert abs(prov["latency_share"] - latency_share(tab, spec.units)) < 1e-4 and prov["latency_share"] <= 0.6
    assert "measured time" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["search", "--strategy", "prune", "--budget", "0.6", "--budget-metric", "latency",
              "--out", str(tmp_path / "p"), *common])
    assert e.value.code == 2 and "prune removes channels" in capsys.readouterr().err


def test_summary_adds_the_measured_times(tmp_path, monkeypatch, capsys):
    from backbones import Spec, create_backbone
    from mixbin.cli import main
    monkeypatch.setenv("B2TRACK_CACHE", str(tmp_path))
    net = create_backbone(TINY)
    names = net.unit_names()
    fake = {"format": latency.TABLE_FORMAT, "backbone": TINY, "input_size": net.search_size, **latency.signature(1),
            "measured": "test", "units": {n: {"fp_ms": 1.0 + i, "bin_ms": 0.25, "macs": 1} for i, n in enumerate(names)}}
    path = latency.cache_path(TINY, net.search_size, 1)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(fake))
    spec = Spec.build(TINY, {n: "bin" if i % 2 else "fp" for i, n in enumerate(names)})
    spec.save(tmp_path / "s.json")
    main(["summary", "--spec", str(tmp_path / "s.json"), "--latency", "--json"])
    s = json.loads(capsys.readouterr().out)
    want = sum(1.0 + i if i % 2 == 0 else 0.25 for i in range(len(names))) / sum(1.0 + i for i in range(len(names)))
    assert abs(s["latency"]["share"] - want) < 1e-9 and abs(s["latency"]["share"] - latency_share(fake, spec.units)) < 1e-9
    assert [u["ms"] for u in s["units"]] == [1.0 + i if i % 2 == 0 else 0.25 for i in range(len(names))]
