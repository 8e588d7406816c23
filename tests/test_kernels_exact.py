"""Packed binary conv == conv2d(pad(sign(x), +1), sign(w)): exact integers, then the epilogue.

Every dispatch path is checked (scalar, AVX2, AVX-512 where the CPU has
them), plus the pure-torch twin, on shapes that stress the packing: channels
that are not multiples of 64, groups, stride 2, odd sizes, padding 1–3, and
inputs in NCHW, channels-last and cropped (non-contiguous) views.
"""
import random

import pytest
import torch
import torch.nn.functional as F

from backbones import kernels
from backbones.kernels import bits

PACKED = kernels.kernel_path() == "packed"
needs_packed = pytest.mark.skipif(not PACKED, reason=f"packed kernel not built: {kernels.load_error()}")

# (n, cin, cout, k, stride, pad, groups, h, w)
SHAPES = [
    (2, 3, 16, 3, 1, 1, 1, 9, 11),
    (1, 37, 20, 3, 2, 1, 1, 13, 10),
    (1, 70, 24, 5, 1, 2, 2, 11, 9),
    (1, 130, 70, 5, 2, 2, 2, 12, 13),
    (3, 70, 17, 1, 1, 0, 1, 5, 6),
    (1, 64, 48, 3, 1, 3, 1, 7, 8),
    (1, 32, 40, 3, 1, 1, 1, 10, 9),      # row-merged (32 ch: 2 words per kernel row)
    (2, 3, 40, 7, 2, 3, 1, 21, 23),      # conv1-like, row-merged
    (1, 3, 24, 11, 2, 0, 1, 27, 25),     # AlexNet conv1 kernel
    (1, 256, 64, 3, 1, 1, 1, 6, 7),      # whole words, 4 per tap
    (1, 96, 64, 3, 2, 1, 2, 9, 9),       # 48 ch per group (a quarter of each word unused)
]


def reference(x, w, stride, pad, groups):
    xs = torch.where(x >= 0, 1.0, -1.0)  # sign(0) = +1, -0.0 too
    xs = F.pad(xs, (pad,) * 4, value=1.0)
    return F.conv2d(xs, torch.where(w >= 0, 1.0, -1.0), stride=stride, groups=groups)


def case(shape, seed):
    n, cin, cout, k, s, p, g, h, w = shape
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, cin, h, w, generator=gen)
    x[x.abs() < 0.05] = 0.0  # exact zeros must read as +1 ...
    x.view(-1)[::13] = -0.0  # ... and so must negative zeros
    wt = torch.randn(cout, cin // g, k, k, generator=gen)
    return x, wt, s, p, g


from tests.helpers.threads import one_thread  # noqa: E402,F401  (autouse fixture)


@pytest.fixture
def isa():
    """Yields a function that forces an ISA path; restores the automatic choice afterwards."""
    def force(name):
        if not kernels.isa_supported(name):
            pytest.skip(f"CPU lacks the {name} path")
        kernels.set_isa(name)
    yield force
    if PACKED:
        kernels.set_isa("auto")


@needs_packed
@pytest.mark.parametrize("path", ["scalar", "avx2", "avx512"])
def test_integer_sums_exact_on_every_isa_path(path, isa):
    isa(path)
    for i, shape in enumerate(SHAPES):
        x, wt, s, p, g = case(shape, i)
        pw = kernels.PackedWeights.from_weight(wt, g)
        ref = reference(x, wt, s, p, g)
        cropped = F.pad(x, (1, 1, 1, 1)).contiguous(memory_format=torch.channels_last)[:, :, 1:-1, 1:-1]
        for xin in (x, x.contiguous(memory_format=torch.channels_last), cropped):
            for layout in ("nchw", "nhwc"):
                d = kernels.binary_conv2d(xin, pw, stride=s, padding=p, raw=True, layout=layout)
                assert d.dtype == torch.int32
                assert torch.equal(d.double(), ref.double()), (path, shape, layout)


@needs_packed
@pytest.mark.parametrize("path", ["scalar", "avx2", "avx512"])
def test_epilogue_matches_torch_bit_for_bit(path, isa):
    isa(path)
    for i, shape in enumerate(SHAPES[:6]):
        x, wt, s, p, g = case(shape, 100 + i)
        pw = kernels.PackedWeights.from_weight(wt, g)
        cout = wt.shape[0]
        scale, bias = torch.rand(cout) + 0.01, torch.randn(cout)
        thr = torch.randn(x.shape[1]) * 0.3
        got = kernels.binary_conv2d(x, pw, thr, scale, bias, stride=s, padding=p, layout="nhwc")
        xs = torch.where(x >= thr.view(1, -1, 1, 1), 1.0, -1.0)
        d = reference(xs, wt, s, p, g)
        want = d * scale.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)
        torch.testing.assert_close(got, want, rtol=0, atol=0)  # same two roundings as torch


def torch_prelu_residual(x, wt, thr, scale, bias, s, p, g, slope, res):
    """The unfused torch sequence a fused unit replaces: conv epilogue, F.prelu, then + residual."""
    d = reference(torch.where(x >= thr.view(1, -1, 1, 1), 1.0, -1.0), wt, s, p, g)
    y = d * scale.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)
    y = y if slope is None else F.prelu(y, slope)
    return y if res is None else res + y


# (n, cin, cout, k, stride, pad, groups, h, w): residual units (cin = cout, the input
# cropped by one pixel is the residual), a stride-2 unit, partial channel blocks.
FUSED_SHAPES = [
    (1, 64, 64, 3, 1, 0, 1, 13, 14),
    (2, 128, 128, 3, 1, 0, 1, 10, 9),
    (1, 64, 128, 3, 2, 1, 1, 11, 12),
    (1, 40, 20, 3, 1, 1, 1, 9, 8),
]


@pytest.mark.parametrize("path", ["scalar", "avx2", "avx512", "torch"])
def test_fused_prelu_and_residual_equal_torch_bit_for_bit(path, isa):
    if path == "torch":
        before = kernels.kernel_path()
        kernels.set_path("torch")
    else:
        if not PACKED:
            pytest.skip(f"packed kernel not built: {kernels.load_error()}")
        isa(path)
    try:
        for i, shape in enumerate(FUSED_SHAPES):
            x, wt, s, p, g = case(shape, 200 + i)
            x = x.contiguous(memory_format=torch.channels_last)
            pw = kernels.PackedWeights.from_weight(wt, g)
            cout = wt.shape[0]
            gen = torch.Generator().manual_seed(i)
            scale, bias = torch.rand(cout, generator=gen) + 0.01, torch.randn(cout, generator=gen)
            thr = torch.randn(x.shape[1], generator=gen) * 0.3
            slope = torch.randn(cout, generator=gen) * 0.3
            ho, wo = kernels.output_hw(x.shape[2], x.shape[3], 3, 3, s, p)
            if cout == x.shape[1] and p == 0:
                residual = x[:, :, 1:-1, 1:-1]  # the crop of a padded residual unit, read in place
            else:
                residual = torch.randn(x.shape[0], cout, ho, wo, generator=gen)
            for res in (residual, residual.contiguous(), None):
                for sl in (slope, None):
                    for layout in ("nhwc", "nchw"):
                        got = kernels.binary_conv2d(x, pw, thr, scale, bias, stride=s, padding=p, layout=layout,
                                                    prelu=sl, residual=res)
                        want = torch_prelu_residual(x, wt, thr, scale, bias, s, p, g, sl, res)
                        torch.testing.assert_close(got, want, rtol=0, atol=0)
    finally:
        if path == "torch":
            kernels.set_path(before)


def test_fused_epilogue_rejects_mismatched_operands():
    x, wt, s, p, g = case(FUSED_SHAPES[0], 0)
    pw = kernels.PackedWeights.from_weight(wt, g)
    with pytest.raises(ValueError, match="residual must have the output's shape"):
        kernels.binary_conv2d(x, pw, padding=1, residual=x[:, :, 1:-1, 1:-1])
    with pytest.raises(ValueError, match="prelu needs 64 slopes"):
        kernels.binary_conv2d(x, pw, padding=1, prelu=torch.ones(3))
    with pytest.raises(ValueError, match="raw=True"):
        kernels.binary_conv2d(x, pw, padding=1, raw=True, prelu=torch.ones(64))


@needs_packed
def test_threads_split_work_without_changing_results():
    x, wt, s, p, g = case((2, 96, 80, 3, 1, 1, 2, 17, 15), 9)
    pw = kernels.PackedWeights.from_weight(wt, g)
    ref = reference(x, wt, s, p, g)
    try:
        for n in (2, 3):
            kernels.set_num_threads(n)
            assert torch.equal(kernels.binary_conv2d(x, pw, stride=s, padding=p, raw=True).double(), ref.double())
    finally:
        kernels.set_num_threads(None)


def test_torch_path_gives_identical_numbers():
    x, wt, s, p, g = case(SHAPES[3], 7)
    pw = kernels.PackedWeights.from_weight(wt, g)
    scale, bias, thr = torch.rand(wt.shape[0]), torch.randn(wt.shape[0]), torch.randn(x.shape[1]) * 0.2
    before = kernels.kernel_path()
    try:
        kernels.set_path("torch")
        t_raw = kernels.binary_conv2d(x, pw, stride=s, padding=p, raw=True)
        t_out = kernels.binary_conv2d(x, pw, thr, scale, bias, stride=s, padding=p)
        assert torch.equal(t_raw.double(), reference(x, wt, s, p, g).double())
        if PACKED:
            kernels.set_path("packed")
            assert torch.equal(kernels.binary_conv2d(x, pw, stride=s, padding=p, raw=True), t_raw)
            assert torch.equal(kernels.binary_conv2d(x, pw, thr, scale, bias, stride=s, padding=p), t_out)
    finally:
        kernels.set_path(before)


@needs_packed
@pytest.mark.parametrize("path", ["scalar", "avx2", "avx512"])
def test_pack_input_matches_torch_packing(path, isa):
    isa(path)
    rnd = random.Random(0)
    for _ in range(6):
        g = rnd.choice([1, 2])
        c = g * rnd.choice([3, 37, 64, 65, 130])
        x = torch.randn(2, c, rnd.randint(3, 9), rnd.randint(3, 9))
        x.view(-1)[::11] = -0.0  # reads as +1
        x.view(-1)[::17] = float("nan")  # reads as -1 (x >= t is False)
        thr = torch.randn(c) * 0.5
        pad = rnd.randint(0, 3)
        want = bits.pack_input_torch(x, thr, g, pad)
        for xin in (x, x.contiguous(memory_format=torch.channels_last)):
            assert torch.equal(kernels.pack_input(xin, thr, g, pad), want)


def test_bit_layout_tail_zero_and_roundtrip():
    b = torch.rand(5, 3, 130) > 0.5
    words = bits.pack_last_dim(b, groups=2)  # 65 channels per group -> 2 words each
    assert words.shape == (5, 3, 4)
    assert torch.equal(bits.unpack_last_dim(words, 130, groups=2), b)
    # Bits 1..63 of each group's second word are the unused tail: zero.
    assert torch.equal(words[..., 1::2] >> 1, torch.zeros_like(words[..., 1::2]))
    dense = torch.rand(1001) > 0.5
    assert torch.equal(bits.unpack_dense(bits.pack_dense(dense), 1001), dense)


def test_padding_is_plus_one_and_negative_zero_is_plus_one():
    pw = kernels.PackedWeights.from_weight(torch.ones(1, 1, 3, 3))
    x = -torch.ones(1, 1, 3, 3)
    d = kernels.binary_conv2d(x, pw, padding=1, raw=True)
    assert d[0, 0, 0, 0].item() == 1 and d[0, 0, 1, 1].item() == -9  # 5 border (+1), 4 inside (-1)
    z = torch.tensor([[[[-0.0, 0.0], [-1e-30, 1e-30]]]])
    d = kernels.binary_conv2d(z, kernels.PackedWeights.from_weight(torch.ones(1, 1, 1, 1)), raw=True)
    assert d.flatten().tolist() == [1, 1, -1, 1]


def test_rejects_bad_shapes():
    pw = kernels.PackedWeights.from_weight(torch.randn(4, 3, 5, 5))
    with pytest.raises(ValueError):
        kernels.binary_conv2d(torch.randn(1, 4, 8, 8), pw)
    with pytest.raises(ValueError):
        kernels.binary_conv2d(torch.randn(1, 3, 3, 3), pw)
