"""The online filter's spectral products (backbones/kernels/spectral.py) against a float64 reference,
and against torch's own float32 sums bit for bit.

Every ISA path the CPU has and the torch expressions must give the same sums to float rounding,
on shapes that are not multiples of a vector (odd frequency counts, one sample, one channel).
Where torch's own products are exact (it rounds the last few products of a vector loop
differently: frequency counts that are multiples of 8), the kernel's sums must be torch's bits,
which keeps the tracker's boxes the same as with torch's expressions.
"""
import pytest
import torch

from backbones import kernels
from backbones.kernels import dispatch, spectral

PACKED = kernels.kernel_path() == "packed"
ISAS = [i for i in dispatch.ISAS if kernels.isa_supported(i)]
# (N samples, C channels, H, W): W = n // 2 + 1 of an rfft2
SHAPES = [(40, 128, 24, 13), (3, 5, 7, 4), (1, 1, 1, 1), (2, 9, 17, 9), (1, 64, 31, 16)]


def spectra(shape, seed):
    gen = torch.Generator().manual_seed(seed)
    n, c, h, w = shape
    cplx = lambda *s: torch.complex(torch.randn(*s, generator=gen), torch.randn(*s, generator=gen))  # noqa: E731
    return cplx(n, c, h, w), cplx(c, h, w), cplx(n, h, w)


def reference(x, v, r):
    x, v, r = x.to(torch.complex128), v.to(torch.complex128), r.to(torch.complex128)
    chan = torch.einsum("nchw,chw->nhw", x, v)
    samp = torch.einsum("nchw,nhw->chw", x, r.conj())
    return chan, samp


def close(a, b, terms):
    # float32 products summed over `terms`: relative error ~ 1e-7 * sqrt(terms), with margin
    scale = b.abs().max().item() + 1e-12
    return (a.to(torch.complex128) - b).abs().max().item() / scale < 1e-6 * (1 + terms ** 0.5)


@pytest.fixture
def restore_kernel_state():
    isa, path = kernels.kernel_isa(), kernels.kernel_path()
    yield
    kernels.set_path(path)
    if isa:
        kernels.set_isa(isa)


@pytest.mark.skipif(not PACKED, reason=f"kernel library not built: {kernels.load_error()}")
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("shape", SHAPES)
def test_every_isa_path_equals_the_float64_sums(isa, shape, restore_kernel_state):
    kernels.set_isa(isa)
    x, v, r = spectra(shape, seed=sum(shape))
    chan, samp = reference(x, v, r)
    assert close(spectral.sum_channels(x, v), chan, shape[1])
    assert close(spectral.sum_channels(x, v[None]), chan, shape[1])  # a (1, C, H, W) kernel spectrum
    assert close(spectral.sum_samples(x, r), samp, shape[0])


@pytest.mark.skipif(not PACKED, reason=f"kernel library not built: {kernels.load_error()}")
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("shape", [(40, 128, 24, 13), (13, 64, 31, 16), (300, 32, 22, 12), (2, 16, 8, 5)])
def test_the_sums_are_torchs_bits(isa, shape, restore_kernel_state):
    if spectral.torch_block() == 0:
        pytest.skip("this torch sums in an order the kernel does not reproduce (results still equal to rounding)")
    kernels.set_isa(isa)
    x, v, r = spectra(shape, seed=7)
    assert torch.equal(spectral.sum_channels(x, v), (x * v).sum(1))
    assert torch.equal(spectral.sum_samples(x, r), (x * r.conj()[:, None]).sum(0))


@pytest.mark.parametrize("shape", SHAPES[:3])
def test_the_torch_path_equals_the_float64_sums(shape, restore_kernel_state):
    kernels.set_path("torch")
    x, v, r = spectra(shape, seed=1)
    chan, samp = reference(x, v, r)
    assert close(spectral.sum_channels(x, v), chan, shape[1])
    assert close(spectral.sum_samples(x, r), samp, shape[0])


@pytest.mark.skipif(not PACKED, reason=f"kernel library not built: {kernels.load_error()}")
def test_threads_split_rows_and_give_the_same_bits(restore_kernel_state):
    x, v, r = spectra(SHAPES[0], seed=3)
    old = kernels.get_num_threads()
    try:
        kernels.set_num_threads(1)
        one = spectral.sum_channels(x, v), spectral.sum_samples(x, r)
        kernels.set_num_threads(2)
        two = spectral.sum_channels(x, v), spectral.sum_samples(x, r)
    finally:
        kernels.set_num_threads(old)
    assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1])


def test_views_and_conjugate_views_are_read_as_their_values():
    x, v, r = spectra((4, 6, 5, 3), seed=4)
    xt = x.transpose(2, 3).contiguous().transpose(2, 3)  # same values, other strides
    chan, samp = reference(x, v.conj(), r.conj())
    assert close(spectral.sum_channels(xt, v.conj()), chan, 6)
    assert close(spectral.sum_samples(xt, r.conj()), samp, 4)


def test_gradients_flow_through_the_torch_expressions():
    x, v, r = spectra((3, 4, 5, 3), seed=5)
    v.requires_grad_(True)
    spectral.sum_channels(x, v).abs().sum().backward()
    assert v.grad is not None and v.grad.abs().sum() > 0


def test_mismatched_shapes_are_refused():
    x, v, r = spectra((3, 4, 5, 3), seed=6)
    with pytest.raises(ValueError, match="shapes differ"):
        spectral.sum_channels(x, v[:2])
    with pytest.raises(ValueError, match="shapes differ"):
        spectral.sum_samples(x, r[:2])
