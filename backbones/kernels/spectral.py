"""Complex multiply-and-sum over stacks of 2-D spectra (the online correlation filter's inner products).

    sum_channels(x, v)  ->  sum_c x[n, c] * v[c]          (N, H, W)
    sum_samples(x, r)   ->  sum_n x[n, c] * conj(r[n])    (C, H, W)

x is (N, C, H, W) complex64. The compiled library reads x once with the sum kept in cache
(spectral.cpp); torch's broadcast product makes a temporary as large as x and reads it again,
about 3x the time on a memory-bound loop. The library adds the terms in the order torch's CPU
sum does, so both give the same bits: which output columns torch sums in its vectorised order
depends on its build and CPU, so that is found once by probing (``torch_block``). Without the
library, on the torch path (``B2TRACK_KERNEL=torch``), or for tensors that need a gradient, the
torch expressions run instead.
"""
from __future__ import annotations

import ctypes
import functools

import torch

from . import dispatch

_ISA_CODE = {"scalar": 0, "avx2": 1, "avx512": 2}


def _native(*tensors: torch.Tensor) -> bool:
    return (dispatch.kernel_path() == "packed"  # only with the library loaded
            and all(t.dtype == torch.complex64 and t.device.type == "cpu" and not t.requires_grad
                    for t in tensors))


def _call(fn, x: torch.Tensor, b: torch.Tensor, out: torch.Tensor, block: int | None = None) -> torch.Tensor:
    n, c = x.shape[:2]
    f = x.shape[-2] * x.shape[-1]
    ptr = [ctypes.c_void_p(t.data_ptr()) for t in (x, b, out)]
    block = torch_block() if block is None else block
    rc = fn(*ptr, n, c, f, block, _ISA_CODE[dispatch.kernel_isa()], dispatch.get_num_threads())
    if rc:
        raise RuntimeError(f"spectral kernel rejected ISA path {dispatch.kernel_isa()!r}")
    return out


@functools.lru_cache(maxsize=1)
def torch_block() -> int:
    """Torch's column block for a complex64 sum over a non-innermost axis: output columns past the
    last whole block are summed in another order. Probed against torch itself (16 on torch 2.13's
    AVX2 and AVX-512 kernels); 0 when no candidate matches its bits (the sums stay exact to rounding)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.complex(torch.randn(3, 32, 6, 9, generator=gen), torch.randn(3, 32, 6, 9, generator=gen))
    v = torch.complex(torch.randn(32, 6, 9, generator=gen), torch.randn(32, 6, 9, generator=gen))
    want = (x * v).sum(1)
    lib = dispatch.library()
    for block in (16, 32, 8, 64, 4):
        got = _call(lib.b2k_spectral_sum_channels, x, v, torch.empty_like(want), block)
        if torch.equal(got, want):
            return block
    return 0


def sum_channels(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) spectra times a (C, H, W) or (1, C, H, W) spectrum, summed over C: (N, H, W)."""
    if v.dim() == 4:
        v = v[0]
    if v.shape != x.shape[1:]:
        raise ValueError(f"spectrum shapes differ: {tuple(x.shape)} and {tuple(v.shape)}")
    if not _native(x, v):
        return (x * v).sum(1)
    x, v = x.resolve_conj().contiguous(), v.resolve_conj().contiguous()
    out = torch.empty((x.shape[0],) + tuple(x.shape[2:]), dtype=x.dtype)
    return _call(dispatch.library().b2k_spectral_sum_channels, x, v, out)


def sum_samples(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) spectra times the conjugate of (N, H, W) spectra, summed over N: (C, H, W)."""
    if r.shape != x.shape[:1] + x.shape[2:]:
        raise ValueError(f"spectrum shapes differ: {tuple(x.shape)} and {tuple(r.shape)}")
    if not _native(x, r):
        return (x * r.conj()[:, None]).sum(0)
    x, r = x.resolve_conj().contiguous(), r.resolve_conj().contiguous()
    out = torch.empty(tuple(x.shape[1:]), dtype=x.dtype)
    return _call(dispatch.library().b2k_spectral_sum_samples, x, r, out)
