"""Exported B2NN == the training-mode backbone in eval mode, for every registered backbone.

Tolerance: outputs agree to 1e-5 of the output's largest magnitude (observed
~1e-7..1e-6: the folded BN epilogue and folded FP convs round differently
from conv-then-BN; the binary bits themselves are identical, see the
per-unit test). BN running stats, affine parameters and in_shift are
randomised so that thresholds, scales and biases are all non-trivial.
"""
import copy
import random

import pytest
import torch

from backbones import create_backbone, kernels, list_backbones
from backbones.export import (FoldedConv, PackedBinaryConv, PackedDownUnit, PackedResidualUnit, export_backbone,
                              export_unit, fold_input_threshold, load_exported, save_exported, storage_report)
from backbones.units import ConvUnit

REL_TOL = 1e-5


from tests.helpers.threads import one_thread  # noqa: E402,F401  (autouse fixture)


def randomise(model, seed):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for u in model.units().values():
            for bn in (u.bn, u.in_norm, u.bn_bin):
                bn.running_mean.copy_(torch.randn(bn.num_features, generator=gen) * 0.5)
                bn.running_var.copy_(torch.rand(bn.num_features, generator=gen) * 2.5 + 0.3)
                if bn.affine:
                    bn.weight.copy_(torch.rand(bn.num_features, generator=gen) + 0.5)
                    bn.bias.copy_(torch.randn(bn.num_features, generator=gen) * 0.3)
            u.in_shift.copy_(torch.randn(u.in_channels, generator=gen) * 0.3)
    return model


def built(name, spec, seed):
    torch.manual_seed(seed)
    m = randomise(create_backbone(name), seed)
    rnd = random.Random(seed)
    names = m.unit_names()
    modes = {n: "bin" for n in names} if spec == "bin" else {n: rnd.choice(["fp", "bin"]) for n in names}
    if spec == "mixed":  # make sure both kinds really occur
        modes[names[0]], modes[names[-1]] = "fp", "bin"
    m.set_modes(modes)
    return m.eval()


def assert_close_rel(got, want):
    err = (got - want).abs().max().item()
    assert err <= REL_TOL * want.abs().max().item(), f"max error {err:.3g} vs output scale {want.abs().max():.3g}"


@pytest.mark.parametrize("name", list_backbones())
@pytest.mark.parametrize("spec", ["mixed", "bin"])
def test_exported_equals_eval_mode(name, spec):
    m = built(name, spec, seed=len(name) + 10 * len(spec))
    x = torch.randn(2, 3, 95, 95)  # smallest convenient size every backbone takes
    with torch.no_grad():
        want = m(x)
    for layout in ("nhwc", "nchw"):
        e = export_backbone(m, layout)
        assert not any(isinstance(mod, ConvUnit) for mod in e.modules())
        with torch.no_grad():
            got = e(x)
        assert got.shape == want.shape
        assert_close_rel(got, want)
    assert m.modes() == {n: u.mode for n, u in m.units().items()}  # original untouched


def test_each_binary_unit_sees_identical_bits():
    """Fed the training unit's own input, an exported unit reproduces it: same bits, same integers."""
    m = built("resnet16-half", "bin", seed=3)
    inputs = {}
    hooks = [u.register_forward_hook(lambda mod, i, o, n=n: inputs.__setitem__(n, (i[0], o)))
             for n, u in m.units().items()]
    with torch.no_grad():
        m(torch.randn(1, 3, 95, 95))
    for h in hooks:
        h.remove()
    for n, u in m.units().items():
        x, want = inputs[n]
        e = export_unit(u)
        train_bits = u.binarize_input(x) > 0
        assert torch.equal(x >= e.threshold.view(1, -1, 1, 1), train_bits), n
        with torch.no_grad():
            assert_close_rel(e(x), want)


def test_threshold_fold_is_exact_at_the_switch_point():
    u = ConvUnit(37, 8, 3, padding=1)
    with torch.no_grad():
        u.in_norm.running_mean.normal_(0, 2)
        u.in_norm.running_var.uniform_(1e-3, 10)
        u.in_shift.normal_(0, 1)
        u.in_shift[:4] = torch.tensor([float("inf"), -float("inf"), 1e30, -1e30])  # always +1 / always -1
    u.eval()
    t = fold_input_threshold(u)
    # The threshold and its float neighbours, at odd positions of an odd-sized map, both layouts.
    below = torch.nextafter(t, torch.full_like(t, -float("inf")))
    above = torch.nextafter(t, torch.full_like(t, float("inf")))
    x = torch.randn(2, 37, 7, 9)
    x[0, :, 3, 4], x[1, :, 6, 8], x[0, :, 0, 0] = t, below, above
    x[1, :, 0, 0], x[1, :, 0, 1] = float("inf"), -float("inf")
    for xin in (x, x.contiguous(memory_format=torch.channels_last)):
        train = (u.in_norm(xin) + u.in_shift.view(1, -1, 1, 1)) >= 0
        assert torch.equal(xin >= t.view(1, -1, 1, 1), train)


def test_threshold_fold_refuses_a_decreasing_expression():
    u = ConvUnit(5, 4, 1)
    u.in_norm = torch.nn.BatchNorm2d(5, affine=True)  # not ours today; a negative weight flips the order
    with torch.no_grad():
        u.in_norm.weight.fill_(-1.0)
    with pytest.raises(RuntimeError, match="not increasing"):
        fold_input_threshold(u.eval())


def test_export_is_deterministic_and_roundtrips(tmp_path):
    m = built("alexnet-half", "mixed", seed=11)
    a, b = export_backbone(m), export_backbone(m)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    path = tmp_path / "b2nn.pt"
    save_exported(a, path)
    loaded = load_exported(path)
    x = torch.randn(1, 3, 95, 95)
    with torch.no_grad():
        assert torch.equal(loaded(x), a(x))
    kinds = {type(mod) for mod in loaded.modules()}
    assert PackedBinaryConv in kinds and FoldedConv in kinds and ConvUnit not in kinds


@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
def test_b2net_blocks_fuse_into_the_kernel_with_the_unfused_floats(tmp_path, layout):
    m = built("b2net", "bin", seed=5)
    fused = export_backbone(m, layout)
    kinds = [type(mod) for mod in fused.modules()]
    assert kinds.count(PackedResidualUnit) == 5 and kinds.count(PackedDownUnit) == 1
    unfused = copy.deepcopy(m)  # the same units exported one by one, the blocks' torch forward kept
    for name, unit in unfused.units().items():
        parent, _, child = name.rpartition(".")
        setattr(unfused.get_submodule(parent) if parent else unfused, child, export_unit(unit, layout))
    x = torch.randn(2, 3, 95, 95)
    with torch.no_grad():
        want = unfused(x)
        assert torch.equal(fused(x), want)  # PReLU and the adds in the epilogue: the same floats
        save_exported(fused, tmp_path / "b2net.pt")
        loaded = load_exported(tmp_path / "b2net.pt")
        assert PackedResidualUnit in {type(mod) for mod in loaded.modules()}
        assert torch.equal(loaded(x), want)


def test_works_under_inference_mode_and_reloads():
    m = built("resnet16-half", "bin", seed=6)
    x = torch.randn(1, 3, 95, 95)
    with torch.inference_mode():  # the tracker runs (and may export) here
        e = export_backbone(m)
        a = e(x)
    with torch.no_grad():
        assert torch.equal(e(x), a)
        other = export_backbone(built("resnet16-half", "bin", seed=7))
        want = other(x)
    with torch.inference_mode():
        # Same buffers, new bits (inference tensors keep no version counter): caches must follow.
        e.load_state_dict(other.state_dict())
        assert torch.equal(e(x), want)


def test_binary_weights_stored_at_one_bit():
    m = built("resnet16-half", "bin", seed=2)
    rep = storage_report(export_backbone(m), reference=m)
    assert rep["bits_per_binary_weight"] < 1.001
    assert rep["binary_weight_bytes"] * 8 < rep["binary_weights"] + 8 * rep["binary_units"]
    assert rep["file_bytes"] < rep["fp_checkpoint_file_bytes"] / 10


def test_gated_units_are_refused():
    m = create_backbone("alexnet-half")
    m.set_gates({n: 0.5 for n in m.unit_names()})
    with pytest.raises(ValueError, match="gated"):
        export_backbone(m)


def test_export_runs_on_the_torch_path_too():
    m = built("resnet16-half", "mixed", seed=4)
    x = torch.randn(1, 3, 95, 95)
    e = export_backbone(m)
    before = kernels.kernel_path()
    try:
        kernels.set_path("torch")
        with torch.no_grad():
            t_out = e(x)
        if before == "packed":
            kernels.set_path("packed")
            with torch.no_grad():
                assert torch.equal(e(x), t_out)
    finally:
        kernels.set_path(before)
