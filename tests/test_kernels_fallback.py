"""Without the compiled library everything still works (pure-torch path, one warning).

Each case runs in a fresh interpreter because the path is chosen at import.
"""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from backbones import kernels

ROOT = Path(__file__).resolve().parents[1]

# Prints the active path, the warnings raised at import, and a checksum of a binary conv.
PROBE = textwrap.dedent("""
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from backbones import kernels
    import torch
    torch.manual_seed(0)
    x, w = torch.randn(1, 37, 9, 8), torch.randn(12, 37, 3, 3)
    d = kernels.binary_conv2d(x, kernels.PackedWeights.from_weight(w), stride=2, padding=1, raw=True)
    print(kernels.kernel_path(), kernels.kernel_isa(), len(caught), int(d.abs().sum()), int(d.sum()))
""")


def probe(**env):
    e = {**os.environ, **env}
    r = subprocess.run([sys.executable, "-c", PROBE], env=e, cwd=ROOT, capture_output=True, text=True, timeout=120)
    return r


def test_forced_torch_path_no_warning():
    r = probe(B2TRACK_KERNEL="torch")
    assert r.returncode == 0, r.stderr
    path, isa, n_warn, *sums = r.stdout.split()
    assert (path, isa, n_warn) == ("torch", "None", "0")
    assert sums == expected_sums()


def expected_sums():
    """The probe's checksums computed here, on whatever path this process has."""
    import torch
    torch.manual_seed(0)
    x, w = torch.randn(1, 37, 9, 8), torch.randn(12, 37, 3, 3)
    d = kernels.binary_conv2d(x, kernels.PackedWeights.from_weight(w), stride=2, padding=1, raw=True)
    return [str(int(d.abs().sum())), str(int(d.sum()))]


def test_missing_library_falls_back_with_one_warning_and_same_numbers():
    r = probe(B2TRACK_KERNEL_LIB="/nonexistent/_b2kernel.so")
    assert r.returncode == 0, r.stderr
    path, isa, n_warn, *sums = r.stdout.split()
    assert (path, isa, n_warn) == ("torch", "None", "1")
    assert sums == expected_sums()


def test_forcing_packed_without_library_fails_loudly():
    r = probe(B2TRACK_KERNEL="packed", B2TRACK_KERNEL_LIB="/nonexistent/_b2kernel.so")
    assert r.returncode != 0 and "B2TRACK_KERNEL=packed" in r.stderr


@pytest.mark.skipif(kernels.kernel_path() != "packed", reason="packed kernel not built")
def test_isa_env_var_forces_the_path():
    r = probe(B2TRACK_KERNEL_ISA="scalar")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:2] == ["packed", "scalar"]


def test_setup_survives_a_missing_compiler(tmp_path):
    pytest.importorskip("setuptools")  # not in every fresh venv (Python >= 3.12)
    env = {**os.environ, "CC": "/nonexistent-cc", "CXX": "/nonexistent-cxx"}
    r = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--build-lib", str(tmp_path / "lib"),
                        "--build-temp", str(tmp_path / "tmp")], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "pure-torch path" in r.stderr
    assert not list((tmp_path / "lib").rglob("_b2kernel*"))
