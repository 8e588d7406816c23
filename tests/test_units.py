"""Binary/FP units: float reference, STE gradients, gated mode, parameter names."""
import torch
import torch.nn.functional as F

from backbones import ConvUnit, approx_sign, sign, ste_sign


def _identity_input_norm(u: ConvUnit):
    # In eval mode with mean 0 / var 1 the input norm is the identity (up to eps).
    u.in_norm.running_mean.zero_()
    u.in_norm.running_var.fill_(1.0 - u.in_norm.eps)
    u.eval()


def test_sign_zero_and_negative_zero_are_plus_one():
    x = torch.tensor([-2.0, -0.0, 0.0, 1e-30, -1e-30, 3.0])
    assert sign(x).tolist() == [-1, 1, 1, 1, -1, 1]
    assert approx_sign(x).tolist() == sign(x).tolist() == ste_sign(x).tolist()


def test_binary_conv_equals_float_reference_with_plus_one_padding():
    torch.manual_seed(0)
    for cin, cout, k, s, p, g in [(7, 5, 3, 1, 1, 1), (8, 6, 3, 2, 1, 2), (3, 4, 5, 1, 2, 1), (10, 10, 1, 1, 0, 1)]:
        u = ConvUnit(cin, cout, k, stride=s, padding=p, groups=g)
        _identity_input_norm(u)
        x = torch.randn(2, cin, 9, 11)
        xb = u.binarize_input(x)
        got = u.binary_conv(xb)
        # Float reference: sign with sign(0)=+1, pad the *signs* with +1, sign the weights.
        xs = torch.where(x >= 0, 1.0, -1.0)
        xs = F.pad(xs, (p, p, p, p), value=1.0)
        ws = torch.where(u.weight >= 0, 1.0, -1.0)
        ref = F.conv2d(xs, ws, stride=s, groups=g) * u.weight.abs().mean(dim=(1, 2, 3)).view(1, -1, 1, 1)
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
        # The integer part is exactly an integer conv of ±1 values.
        ints = F.conv2d(xs, ws, stride=s, groups=g)
        assert torch.equal(ints, ints.round())


def test_padding_is_plus_one_not_zero():
    u = ConvUnit(1, 1, 3, padding=1)
    _identity_input_norm(u)
    with torch.no_grad():
        u.weight.fill_(1.0)
    x = -torch.ones(1, 1, 3, 3)  # all -1 inside, +1 border
    y = u.binary_conv(u.binarize_input(x))
    # corner output: 4 inside taps (-1) and 5 border taps (+1) -> +1; centre: 9 × -1.
    assert y[0, 0, 0, 0].item() == 1.0 and y[0, 0, 1, 1].item() == -9.0


def test_ste_gradients_flow_and_are_finite():
    torch.manual_seed(1)
    u = ConvUnit(6, 8, 3, padding=1)
    u.mode = "bin"
    x = torch.randn(3, 6, 8, 8, requires_grad=True)
    u(x).square().mean().backward()
    for name, t in [("input", x.grad), ("weight", u.weight.grad), ("in_shift", u.in_shift.grad),
                    ("bn_bin.weight", u.bn_bin.weight.grad)]:
        assert t is not None and torch.isfinite(t).all() and t.abs().sum() > 0, name


def test_approx_sign_gradient_shape():
    x = torch.tensor([-1.5, -0.5, 0.0, 0.25, 2.0], requires_grad=True)
    approx_sign(x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 2.0, 1.5, 0.0]
    w = torch.tensor([-1.5, -0.5, 0.9, 1.1], requires_grad=True)
    ste_sign(w).sum().backward()
    assert w.grad.tolist() == [0.0, 1.0, 1.0, 0.0]


def test_gated_mode_endpoints_equal_fp_and_bin():
    torch.manual_seed(2)
    u = ConvUnit(5, 7, 3, stride=2, padding=1).eval()
    x = torch.randn(2, 5, 13, 13)
    fp, bn = u.forward_fp(x), u.forward_bin(x)
    u.mode = "gated"
    u.gate = torch.tensor(1.0)
    torch.testing.assert_close(u(x), fp)
    u.gate = torch.tensor(0.0)
    torch.testing.assert_close(u(x), bn)
    u.gate = torch.tensor(0.25)
    torch.testing.assert_close(u(x), 0.25 * fp + 0.75 * bn)


def test_mode_switch_keeps_parameter_names():
    u = ConvUnit(4, 4, 3, padding=1)
    names = {m: list(u.state_dict()) for m in ("fp", "bin", "gated") if not setattr(u, "mode", m)}
    assert names["fp"] == names["bin"] == names["gated"]
    try:
        u.mode = "int8"
    except ValueError as e:
        assert "mode" in str(e)
    else:
        raise AssertionError("bad mode accepted")
