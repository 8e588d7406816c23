"""Which path runs binary convs: the packed C++ kernel or the pure-torch twin.

Environment:
- ``B2TRACK_KERNEL=torch|packed`` forces a path (default: packed if the
  library loads, else torch with one warning);
- ``B2TRACK_KERNEL_ISA=scalar|avx2|avx512`` forces the kernel's ISA path;
- ``B2TRACK_KERNEL_LIB=/path/lib.so`` loads another library (a missing path
  simulates an install without a compiler).
"""
from __future__ import annotations

import os
import warnings

import torch

from . import _loader

PATH_ENV, ISA_ENV = "B2TRACK_KERNEL", "B2TRACK_KERNEL_ISA"
ISAS = ("scalar", "avx2", "avx512")

_lib, _load_error = _loader.load()
_path = "packed" if _lib is not None else "torch"
_threads: int | None = None  # None: follow torch.get_num_threads()
_threads_set_in_lib = -1


def _init() -> None:
    global _path
    forced = os.environ.get(PATH_ENV, "").strip().lower()
    if forced not in ("", "auto", "torch", "packed"):
        raise ValueError(f"{PATH_ENV} must be 'torch', 'packed' or 'auto', got {forced!r}")
    if forced == "packed" and _lib is None:
        raise RuntimeError(f"{PATH_ENV}=packed but the packed kernel is unavailable: {_load_error}")
    if forced == "torch":
        _path = "torch"
    elif _lib is None:
        warnings.warn(f"b2track packed binary kernel unavailable ({_load_error}); using the pure-torch path "
                      "(same numbers, much slower).", RuntimeWarning, stacklevel=3)
    isa = os.environ.get(ISA_ENV, "").strip().lower()
    if isa and _lib is not None and not set_isa(isa, strict=False):
        warnings.warn(f"{ISA_ENV}={isa} is not available on this CPU; using {kernel_isa()}", RuntimeWarning,
                      stacklevel=3)


def library():
    """The loaded ctypes library, or None."""
    return _lib


def load_error() -> str | None:
    return _load_error


def kernel_path() -> str:
    """'packed' (C++ kernel) or 'torch' (pure-torch fallback)."""
    return _path


def set_path(path: str) -> None:
    """Switch between 'packed' and 'torch' at run time ('auto' = packed if available)."""
    global _path
    if path == "auto":
        path = "packed" if _lib is not None else "torch"
    if path not in ("packed", "torch"):
        raise ValueError(f"path must be 'packed', 'torch' or 'auto', got {path!r}")
    if path == "packed" and _lib is None:
        raise RuntimeError(f"packed kernel unavailable: {_load_error}")
    _path = path


def kernel_isa() -> str | None:
    """The kernel's ISA path ('avx512' | 'avx2' | 'scalar'), or None on the torch path."""
    if _path != "packed":
        return None
    return _lib.b2k_isa().decode()


def isa_supported(isa: str) -> bool:
    return _lib is not None and bool(_lib.b2k_isa_supported(isa.encode()))


def set_isa(isa: str, strict: bool = True) -> bool:
    """Force an ISA path ('auto' picks the best). Returns False (or raises if strict) when unsupported."""
    if _lib is None:
        if strict:
            raise RuntimeError(f"packed kernel unavailable: {_load_error}")
        return False
    ok = _lib.b2k_set_isa(isa.encode()) == 0
    if not ok and strict:
        raise ValueError(f"ISA path {isa!r} is unknown or unsupported on this CPU "
                         f"(choose from auto, {', '.join(ISAS)})")
    return ok


def set_num_threads(n: int | None) -> None:
    """Kernel threads; None follows torch.get_num_threads()."""
    global _threads
    _threads = None if n is None else max(1, int(n))


def get_num_threads() -> int:
    return _threads if _threads is not None else torch.get_num_threads()


def sync_threads() -> None:
    """Pass the wanted thread count to the library when it changed."""
    global _threads_set_in_lib
    n = get_num_threads()
    if n != _threads_set_in_lib:
        _lib.b2k_set_num_threads(n)
        _threads_set_in_lib = n


_init()
