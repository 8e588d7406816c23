"""MixBin search mechanics on the tiny backbone: gates, budget loss, crispness, thresholding, resume."""
import copy
import itertools
import random

import numpy as np
import pytest
import torch

from backbones import BINARY_DIVISOR, Spec, budget_of, create_backbone, unit_costs
from mixbin.calibrate import init_binary_paths
from mixbin.gates import UnitGates, hard_gates, heaviside
from mixbin.search import SearchConfig, search, threshold
from mixbin.select import BudgetError, capacity, select_modes

from test_mixbin_toy import TINY, batches, loss_fn, make_batch, train_fp
from test_mixbin_toy import one_thread  # noqa: F401  (autouse fixture)



def tiny_macs():
    return {n: c.macs for n, c in unit_costs(create_backbone(TINY), 32).items()}


def source(seed=5, n=16):
    return lambda start: (make_batch(seed * 7919 + k, n) for k in itertools.count(start))


@pytest.fixture(scope="module")
def teacher():
    m = train_fp(80)
    init_binary_paths(m, loss_fn, batches(0, seed=3), 4)
    return m


def test_heaviside_and_gate_init():
    m = torch.tensor([0.0, 0.3, 1.0])
    for g in (1.0, 5.0, 12.0):
        z = heaviside(m, g)
        assert abs(float(z[0])) < 1e-7 and abs(float(z[2]) - 1) < 1e-6 and 0 < float(z[1]) < 1
    gates = UnitGates(["a", "b"], beta=3.0, gamma=7.0)
    with torch.no_grad():
        gates.theta.fill_(gates.theta_for(0.37))
    assert all(abs(v - 0.37) < 1e-4 for v in gates.values().values())


@pytest.mark.parametrize("training", [False, True])
def test_gated_network_at_hard_gates_equals_the_spec_network(teacher, training):
    model = copy.deepcopy(teacher).train(training)
    bb = model.backbone
    x = make_batch(99)[0]
    rng = random.Random(0)
    for _ in range(4):
        modes = {n: rng.choice(("fp", "bin")) for n in bb.unit_names()}
        bb.set_modes(modes)
        hard = model(x)
        bb.set_gates(hard_gates(modes))
        gated = model(x)
        assert torch.equal(hard, gated)


def test_gated_equals_spec_on_resnet16_half():
    torch.manual_seed(0)
    bb = create_backbone("resnet16-half").eval()
    names = bb.unit_names()
    modes = {n: ("bin" if i % 3 else "fp") for i, n in enumerate(names)}
    x = torch.randn(1, 3, 71, 71)
    bb.set_modes(modes)
    hard = bb(x)
    bb.set_gates(hard_gates(modes))
    assert torch.equal(hard, bb(x))


def _all_budgets(macs):
    names = list(macs)
    out = []
    for bits in itertools.product(("fp", "bin"), repeat=len(names)):
        out.append(budget_of(macs, dict(zip(names, bits))))
    return np.array(out)


def test_thresholding_never_exceeds_budget_and_is_closest():
    rng = np.random.default_rng(0)
    r16 = {n: c.macs for n, c in unit_costs(create_backbone("resnet16-half"), 255).items()}
    cases = [tiny_macs(), r16]
    for _ in range(6):  # random small backbones, brute-forced independently below
        n = int(rng.integers(3, 9))
        cases.append({f"u{i}": int(rng.integers(1, 10 ** 6)) for i in range(n)})
    for macs in cases:
        reachable = _all_budgets(macs) if len(macs) <= 8 else None
        for _ in range(40):
            b = float(rng.uniform(1.2 / BINARY_DIVISOR, 1.0))
            gates = {n: float(rng.uniform()) for n in macs}
            if rng.uniform() < 0.5:  # crisp gate vectors too
                gates = {n: float(round(v)) for n, v in gates.items()}
            for tol in (0.0, 0.01, 0.02):
                sel = threshold(macs, b, gates, tol)
                real = budget_of(macs, sel.modes)
                assert real <= b and abs(real - sel.budget) < 1e-12
                assert real >= sel.best - tol - 1e-12
                if sel.best >= b - 0.02:
                    assert real >= b - 0.02
                if reachable is not None:
                    best = reachable[reachable <= b].max()
                    assert abs(sel.best - best) < 1e-12
                    if tol == 0.0:
                        assert abs(real - best) < 1e-12


def test_thresholding_follows_crisp_gates_when_they_fit():
    macs = tiny_macs()
    modes = {"conv1": "fp", "conv2": "bin", "conv3": "bin", "conv4": "fp", "conv5": "bin", "conv6": "fp"}
    b = budget_of(macs, modes)
    sel = threshold(macs, b, hard_gates(modes), 0.01)
    assert sel.modes == modes


def test_impossible_budgets_raise():
    macs = tiny_macs()
    for b in (0.0, -0.1, 1.5, 0.5 / BINARY_DIVISOR):
        with pytest.raises(BudgetError):
            capacity(macs, b)
    with pytest.raises(BudgetError):
        select_modes(macs, 0.2, {}, fixed={"conv3": "fp", "conv5": "fp"})


@pytest.mark.parametrize("budget", [0.15, 0.3, 0.5])
def test_budget_loss_drives_expected_cost_to_budget(teacher, budget):
    # Budget loss alone (no crispness, frozen weights): the expected cost settles at b.
    model = copy.deepcopy(teacher)
    start = 0.6 if budget < 0.4 else 0.2  # far from b, on either side
    cfg = SearchConfig(budget=budget, steps=60, lr_gates=0.1, lr_weights=0.0, w_crisp_end=0.0, init_gate=start,
                       beta=(1.0, 1.0), gamma=(1.0, 1.0))
    res = search(model, loss_fn, source(n=8), cfg)
    assert abs(res.expected_cost - budget) < 0.02, res.expected_cost


def test_search_gates_end_crisp_on_budget_and_spec_meets_budget(teacher):
    model = copy.deepcopy(teacher)
    res = search(model, loss_fn, source(), SearchConfig(budget=0.3, steps=150, seed=1), backbone_name=TINY)
    z = np.array(list(res.gates.values()))
    assert np.all(np.minimum(z, 1 - z) < 0.05), res.gates
    assert abs(res.expected_cost - 0.3) < 0.02, res.expected_cost
    spec = res.spec
    spec.validate()
    assert 0.28 <= spec.budget <= 0.3
    assert spec.provenance["strategy"] == "mixbin" and set(spec.provenance["gates"]) == set(spec.units)
    assert model.backbone.modes() == spec.units  # the model is left in the spec's modes
    # Crisp gates that fit are kept as they are.
    crisp = {n: "fp" if v > 0.5 else "bin" for n, v in res.gates.items()}
    if budget_of(tiny_macs(), crisp) <= 0.3:
        assert spec.units == crisp


class _Stop(Exception):
    pass


def test_search_resumes_where_it_stopped(teacher, tmp_path):
    cfg = SearchConfig(budget=0.3, steps=30, ckpt_every=10, log_every=5)
    ref = search(copy.deepcopy(teacher), loss_fn, source(), cfg)

    def dying(start):
        for k in itertools.count(start):
            if k == 25:
                raise _Stop
            yield make_batch(5 * 7919 + k, 16)
    with pytest.raises(_Stop):
        search(copy.deepcopy(teacher), loss_fn, dying, cfg, out_dir=tmp_path)
    assert torch.load(tmp_path / "search.pt", weights_only=True)["step"] == 20
    res = search(copy.deepcopy(teacher), loss_fn, source(), cfg, out_dir=tmp_path)
    assert res.gates == ref.gates and res.spec.units == ref.spec.units
    assert Spec.from_dict(res.spec.to_dict()).budget == res.spec.budget
