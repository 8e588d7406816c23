"""Finds and loads the compiled kernel library with ctypes.

torch is imported first on purpose: it loads its own OpenMP runtime
(libgomp.so.1), and the kernel library, linked against the same soname, then
reuses it instead of starting a second thread pool that would fight torch's.
"""
from __future__ import annotations

import ctypes
import glob
import os
from pathlib import Path

import torch  # noqa: F401  (must precede the CDLL below, see module doc)

LIB_ENV = "B2TRACK_KERNEL_LIB"
API_VERSION = 4  # b2k_version() of the C++ source this loader speaks to
_HERE = Path(__file__).resolve().parent


class Shape(ctypes.Structure):
    """Mirror of the C struct b2k_shape (all int64)."""

    _fields_ = [("n", ctypes.c_int64), ("cin", ctypes.c_int64), ("h", ctypes.c_int64), ("w", ctypes.c_int64),
                ("in_stride", ctypes.c_int64 * 4),
                ("cout", ctypes.c_int64), ("kh", ctypes.c_int64), ("kw", ctypes.c_int64),
                ("stride", ctypes.c_int64), ("pad", ctypes.c_int64), ("groups", ctypes.c_int64),
                ("out_stride", ctypes.c_int64 * 4), ("merge_rows", ctypes.c_int64)]


def library_path() -> Path | None:
    """$B2TRACK_KERNEL_LIB if set (even if it does not exist), else the built library next to this file."""
    env = os.environ.get(LIB_ENV)
    if env:
        return Path(env)
    found = sorted(glob.glob(str(_HERE / "_b2kernel*.so")) + glob.glob(str(_HERE / "_b2kernel*.pyd"))
                   + glob.glob(str(_HERE / "_b2kernel*.dylib")))
    return Path(found[0]) if found else None


def _declare(lib: ctypes.CDLL) -> None:
    p, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    sp = ctypes.POINTER(Shape)
    sigs = {
        "b2k_version": (i32, []),
        "b2k_isa": (ctypes.c_char_p, []),
        "b2k_isa_supported": (i32, [ctypes.c_char_p]),
        "b2k_set_isa": (i32, [ctypes.c_char_p]),
        "b2k_set_num_threads": (None, [i32]),
        "b2k_get_num_threads": (i32, []),
        "b2k_has_openmp": (i32, []),
        "b2k_packed_words": (i64, [sp]),
        "b2k_pack": (i32, [sp, p, p, p]),
        "b2k_conv_packed": (i32, [sp, p, p, p, p, p, p]),
        "b2k_conv": (i32, [sp, p, p, p, p, p, p, p]),
        "b2k_conv_ex": (i32, [sp, p, p, p, p, p, p, p, p, p, p]),
        "b2k_spectral_sum_channels": (i32, [p, p, p, i64, i64, i64, i64, i32, i32]),
        "b2k_spectral_sum_samples": (i32, [p, p, p, i64, i64, i64, i64, i32, i32]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args


def load() -> tuple[ctypes.CDLL | None, str | None]:
    """(library, None) or (None, why it could not be loaded)."""
    path = library_path()
    if path is None:
        return None, f"no compiled kernel library (_b2kernel*.so) in {_HERE}"
    try:
        lib = ctypes.CDLL(str(path))
        _declare(lib)
    except (OSError, AttributeError) as e:
        return None, f"could not load {path}: {e}"
    if lib.b2k_version() != API_VERSION:
        return None, (f"{path} has kernel API version {lib.b2k_version()}, expected {API_VERSION} "
                      "(rebuild: pip install -e .)")
    return lib, None
