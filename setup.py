"""Builds the packed binary-conv kernel (plain C++, no torch headers) at install time.

Metadata lives in pyproject.toml; this file only adds the shared library. It
is loaded with ctypes (backbones/kernels/_loader.py), not imported, so it needs
no Python C API. The build is optional: without a working compiler the install
still succeeds and backbones.kernels falls back to its pure-torch path.
"""
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """build_ext that warns instead of failing when the kernel cannot be compiled."""

    def run(self):
        try:
            super().run()
        except Exception as e:  # no compiler, missing headers, unsupported platform...
            self._warn(e)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as e:
            self._warn(e)

    @staticmethod
    def _warn(e):
        print(f"WARNING: b2track's packed binary kernel was not built ({type(e).__name__}: {e}); "
              "binary layers will use the slower pure-torch path.", file=sys.stderr)


# -ffp-contract=off keeps scale*D + bias as two roundings, like the torch fallback.
# No -march=native: the ISA paths carry target attributes and are picked at run time.
kernel = Extension(
    "backbones.kernels._b2kernel",
    sources=["backbones/kernels/b2kernel.cpp", "backbones/kernels/spectral.cpp"],
    language="c++",
    extra_compile_args=["-std=c++17", "-O3", "-fopenmp", "-ffp-contract=off", "-fvisibility=hidden"]
    if sys.platform != "win32" else ["/O2", "/openmp"],
    extra_link_args=["-fopenmp"] if sys.platform != "win32" else [],
)

setup(ext_modules=[kernel], cmdclass={"build_ext": OptionalBuildExt})
