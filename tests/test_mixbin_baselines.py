"""Baselines: every strategy's spec meets its budget on resnet16-half's real MACs; the rules do what they say."""
import copy

import numpy as np
import pytest
import torch

from backbones import BINARY_DIVISOR, Spec, budget_of, create_backbone, unit_costs
from mixbin import baselines
from mixbin.calibrate import init_binary_paths
from mixbin.measure import assignment_loss, binarization_error
from mixbin.search import threshold
from mixbin.strategies import STRATEGIES, StrategyInputs, run_strategy

from test_mixbin_toy import TINY, batches, loss_fn, make_batch, train_fp
from test_mixbin_toy import one_thread  # noqa: F401  (autouse fixture)

BUDGETS = (0.15, 0.3, 0.5)
R16 = {n: c.macs for n, c in unit_costs(create_backbone("resnet16-half"), 255).items()}


def fake_val_loss(macs, seed):
    """A deterministic 'validation loss': each binary unit adds a random harm, with some interaction."""
    rng = np.random.default_rng(seed)
    harm = {n: float(rng.uniform(0.01, 0.5)) for n in macs}
    names = list(macs)

    def f(modes):
        nbin = [n for n in names if modes[n] == "bin"]
        return sum(harm[n] for n in nbin) * (1 + 0.02 * len(nbin))
    return f


def in_window(sel, macs, b):
    real = budget_of(macs, sel.modes)
    assert abs(real - sel.budget) < 1e-12
    return b - 0.02 <= real <= b


@pytest.mark.parametrize("b", BUDGETS)
def test_every_baseline_meets_the_budget_on_resnet16_half(b):
    rng = np.random.default_rng(1)
    errors = {n: float(rng.uniform(0.2, 1.5)) for n in R16}
    sels = {f"random-{s}": baselines.random_modes(R16, b, s) for s in range(5)}
    sels["iterative-add"], _ = baselines.iterative_modes(R16, b, fake_val_loss(R16, 0), "add")
    sels["iterative-remove"], _ = baselines.iterative_modes(R16, b, fake_val_loss(R16, 0), "remove")
    sels["first-last"] = baselines.first_last_modes(R16, b, errors)
    sels["first-last-cheapest"] = baselines.first_last_modes(R16, b)
    sels["sensitivity"] = baselines.sensitivity_modes(R16, b, errors)
    sels["mixbin-threshold"] = threshold(R16, b, {n: float(rng.uniform()) for n in R16})
    for name, sel in sels.items():
        assert in_window(sel, R16, b), (name, sel.budget)
        Spec.build("resnet16-half", sel.modes, 255, {"strategy": name}, R16).validate(R16)


def test_references():
    assert budget_of(R16, baselines.fp_modes(R16)) == 1.0
    assert abs(budget_of(R16, baselines.all_binary_modes(R16)) - 1 / BINARY_DIVISOR) < 1e-12


def test_random_is_seeded_uniform_over_valid_assignments():
    a = [baselines.random_modes(R16, 0.3, s).modes for s in range(6)]
    assert a[0] == baselines.random_modes(R16, 0.3, 0).modes
    assert len({tuple(sorted(m.items())) for m in a}) >= 5  # thousands of valid assignments: seeds differ


def test_iterative_add_takes_the_best_gain_per_cost_first():
    macs = {"a": 100, "b": 400, "c": 100, "d": 50}
    harm = {"a": 1.0, "b": 2.0, "c": 0.1, "d": 0.6}  # per cost: d 0.012, a 0.01, b 0.005, c 0.001
    loss = lambda m: sum(harm[n] for n in m if m[n] == "bin")  # noqa: E731
    sel, hist = baselines.iterative_modes(macs, 0.45, loss, "add")
    assert [h["fp"] for h in hist][:2] == ["d", "a"]
    assert sel.modes["d"] == sel.modes["a"] == "fp" and sel.budget <= 0.45


def test_first_last_keeps_the_ends_and_sensitivity_ranks_by_error_per_cost():
    names = list(R16)
    sel = baselines.first_last_modes(R16, 0.3)
    assert sel.modes[names[0]] == sel.modes[names[-1]] == "fp"
    errors = {n: 0.1 for n in R16}
    errors["layer2.0.downsample"] = 5.0  # tiny and very sensitive: first in line
    assert baselines.sensitivity_order(R16, errors)[0] == "layer2.0.downsample"
    assert baselines.sensitivity_modes(R16, 0.15, errors).modes["layer2.0.downsample"] == "fp"


@pytest.fixture(scope="module")
def tiny_teacher():
    m = train_fp(80)
    init_binary_paths(m, loss_fn, batches(0, seed=3), 4)
    return m


def test_binarization_error_and_assignment_loss_on_the_tiny_model(tiny_teacher):
    model = copy.deepcopy(tiny_teacher)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    errs = binarization_error(model, loss_fn, batches(0, seed=4), 2)
    assert set(errs) == set(model.backbone.unit_names())
    assert all(np.isfinite(v) and 0 < v < 10 for v in errs.values())
    evaluate = assignment_loss(model, loss_fn, [make_batch(777 + k) for k in range(2)])
    names = model.backbone.unit_names()
    fp = evaluate({n: "fp" for n in names})
    allbin = evaluate({n: "bin" for n in names})
    assert fp < allbin
    # Measuring leaves weights, running statistics and modes untouched.
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert model.backbone.modes() == {n: "fp" for n in names}


def test_every_strategy_runs_on_the_tiny_model(tiny_teacher, tmp_path):
    macs = {n: c.macs for n, c in unit_costs(create_backbone(TINY), 32).items()}
    for name in STRATEGIES:
        inp = StrategyInputs(model=copy.deepcopy(tiny_teacher), loss_fn=loss_fn,
                             train_batches=lambda s: batches(s, seed=9),
                             val_batches=[make_batch(555 + k) for k in range(2)], budget=0.3, steps=12,
                             out_dir=tmp_path / name, provenance={"data": "toy"}, calib_batches=2, sensitivity_batches=2)
        res = run_strategy(name, inp)
        spec = res.spec
        spec.validate(macs)
        assert spec.provenance["strategy"] == name and spec.provenance["data"] == "toy"
        if name == "prune":
            assert res.masks is not None and res.info["pruned_budget"] <= 0.3
        elif name == "fp":
            assert spec.budget == 1.0
        elif name == "all-binary":
            assert spec.budget < 0.02
        else:
            assert 0.28 <= spec.budget <= 0.3, (name, spec.budget)
        assert (tmp_path / name / "log.jsonl").is_file()
