"""The torch files b2track writes and reads: one owner for their formats.

Two kinds of file, each tagged with ``"format": "<kind>/<version>"``:

- **model** (``b2track-model/1``): a trained network to ship or hand on::

      {"format": "b2track-model/1", "spec": Spec.to_dict(),
       "state": compress_state(state_dict, spec.units, prefix), "meta": {...JSON types}}

  Binary units keep only sign bits + scale (all their forward needs); FP
  tensors are stored in fp16.
- **run** (``b2track-run/1``): a training job's resume point (FP training,
  search, prune, fine-tuning)::

      {"format": "b2track-run/1", "model": state_dict, "step": int, "rng": rng_state(), ...}

  The job adds its own fields (optimiser state, gates, wall time, config),
  all tensors, numbers, strings and plain containers.

Every file is read with ``torch.load(weights_only=True)``: only tensors,
numbers, strings and containers unpickle, so a shared checkpoint can never
run code while it loads. A file that holds anything else is refused, as is a
format this version does not know (a newer one included).
"""
from __future__ import annotations

import errno
import json
import os
import random
import warnings
from pathlib import Path

import numpy as np
import torch

from .checkpoint import compress_state, decompress_state

MODEL_FORMAT = "b2track-model/1"
RUN_FORMAT = "b2track-run/1"
SPEC_FORMAT = "b2track-spec/1"  # JSON, read and written by backbones.spec
PAIRS_FORMAT = "b2track-pairs/1"  # shard.json of pre-generated pairs, tracker.train.data.shards
KNOWN_FORMATS = (MODEL_FORMAT, RUN_FORMAT, SPEC_FORMAT, PAIRS_FORMAT)

# Run checkpoints written before RUN_FORMAT stored numpy's RNG state as an
# ndarray; these three globals rebuild plain arrays and nothing else.
_NUMPY_CORE = getattr(np, "_core", None) or np.core
_LEGACY_NUMPY = [np.ndarray, np.dtype, np.dtype(np.uint32).__class__, _NUMPY_CORE.multiarray._reconstruct]


class FileFormatError(ValueError):
    """A file that cannot be used; the message is one line naming the file."""


# -- writing --------------------------------------------------------------

def _replace_atomically(path, write) -> Path:
    """``write(tmp)`` to a temporary name, then rename over ``path``: a kill or a failed write mid-way
    never leaves a partial file under the final name, nor the temporary one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_save(obj, path) -> Path:
    """``torch.save`` whole or not at all (see ``_replace_atomically``)."""
    try:
        return _replace_atomically(path, lambda tmp: torch.save(obj, tmp))
    except RuntimeError:  # torch's writer reports a full disk as an internal assertion, not an OSError
        raise OSError(errno.EIO, "could not finish writing (disk full or file-size limit?)", str(path)) from None


def atomic_write_text(path, text: str) -> Path:
    """A text file (JSON manifests, notes) whole or not at all."""
    return _replace_atomically(path, lambda tmp: tmp.write_text(text))


def atomic_write_bytes(path, data: bytes) -> Path:
    return _replace_atomically(path, lambda tmp: tmp.write_bytes(data))


def plain(obj):
    """``obj`` as JSON types (paths and other objects become strings), safe to store in any file."""
    return json.loads(json.dumps(obj, default=str))


def write_model(path, state: dict, spec: dict, meta: dict | None = None, prefix: str = "") -> Path:
    """Write a model file; ``prefix`` is where the backbone's units sit in ``state`` (e.g. ``backbone.``)."""
    units = spec.get("units", {})
    return atomic_save({"format": MODEL_FORMAT, "spec": plain(spec),
                        "state": compress_state(state, units, prefix=prefix), "meta": plain(dict(meta or {}))}, path)


def write_run(path, model_state: dict, step: int, **fields) -> Path:
    """Write a run checkpoint: the model's state, the step reached, the RNG state and the job's own fields."""
    return atomic_save({"format": RUN_FORMAT, "model": model_state, "step": int(step), "rng": rng_state(),
                        **fields}, path)


# -- reading --------------------------------------------------------------

def safe_load(path):
    """``torch.load(path, weights_only=True)``; every failure is a one-line FileFormatError."""
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"file not found: {path}")
    try:
        with warnings.catch_warnings():  # torch's chatter would break the one-line contract
            warnings.simplefilter("ignore")
            with torch.serialization.safe_globals(_LEGACY_NUMPY):
                return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - every unpickling failure means "not a file we accept"
        unsafe = _unsafe_globals(path)
        if unsafe:
            raise FileFormatError(f"refusing {path}: it holds pickled Python objects ({', '.join(unsafe[:3])}), "
                                  f"not only tensors; b2track never runs code from a file") from None
        raise FileFormatError(f"cannot read {path}: not a torch file, or truncated ({type(e).__name__})") from None


def _unsafe_globals(path: Path) -> list[str]:
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # noqa: BLE001 - not even a readable archive
        return []


def format_problem(found, expected: str) -> str | None:
    """None if ``found`` is the format tag ``expected``; else why not, in words (a newer version named as such)."""
    if found == expected:
        return None
    if found is None:
        return f"not a b2track file (no format tag; expected {expected!r})"
    kind, _, version = str(found).partition("/")
    want_kind, _, want_version = expected.partition("/")
    if kind == want_kind and version.isdigit() and int(version) > int(want_version):
        return f"format {found!r} was written by a newer b2track; this one reads {expected!r}"
    return f"format {found!r}, expected {expected!r}"


def check_format(obj, path, expected: str) -> dict:
    """``obj`` if it is a dict tagged ``expected``; a one-line error that names file and format otherwise."""
    problem = format_problem(obj.get("format") if isinstance(obj, dict) else None, expected)
    if problem:
        raise FileFormatError(f"{path}: {problem}")
    return obj


def read_run(path) -> dict:
    """A run checkpoint (current format, or the untagged dicts written before it)."""
    ck = safe_load(path)
    if isinstance(ck, dict) and "format" not in ck and isinstance(ck.get("model"), dict) and "step" in ck:
        return ck  # written before the format tag; same fields
    return check_format(ck, path, RUN_FORMAT)


def read_model(path) -> tuple[dict, dict | None, dict]:
    """(float32 state dict, spec dict or None, meta) of a model file, a run checkpoint or a bare state dict."""
    ck = safe_load(path)
    if not isinstance(ck, dict):
        raise FileFormatError(f"{path}: unexpected content ({type(ck).__name__}), not a b2track file")
    fmt = ck.get("format")
    if fmt == MODEL_FORMAT:
        if not isinstance(ck.get("state"), dict):
            raise FileFormatError(f"{path}: model file without a 'state' dict")
        try:
            state = decompress_state(ck["state"])
        except (KeyError, ValueError, TypeError, RuntimeError) as e:
            raise FileFormatError(f"{path}: damaged packed weights ({type(e).__name__})") from None
        return state, ck.get("spec"), dict(ck.get("meta") or {})
    if fmt == RUN_FORMAT or (fmt is None and isinstance(ck.get("model"), dict)):
        meta = {k: ck[k] for k in ("backbone", "step", "config", "modes") if k in ck}
        return ck["model"], None, meta
    if fmt is not None:
        check_format(ck, path, MODEL_FORMAT)  # raises: unknown or newer format
    if ck and all(isinstance(v, torch.Tensor) for v in ck.values()):
        return ck, None, {}
    raise FileFormatError(f"{path}: no model state found (expected a b2track model or run file, or a state dict)")


def state_dict_problem(e: Exception, limit: int = 240) -> str:
    """The first problem ``load_state_dict`` lists (its first line is only a header), as one short line."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Error(s) in loading state_dict"):
        lines = lines[1:]
    first = lines[0] if lines else type(e).__name__
    return first if len(first) <= limit else first[:limit - 3] + "..."


# -- RNG state as tensors and numbers -------------------------------------

def rng_state() -> dict:
    """torch, numpy and Python RNG states in types that load with ``weights_only=True``."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, words, gauss_next = random.getstate()
    return {"torch": torch.get_rng_state(),
            "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(gauss)},
            "python": {"version": version, "words": torch.tensor(words, dtype=torch.int64), "gauss_next": gauss_next}}


def set_rng_state(state: dict) -> None:
    """Inverse of ``rng_state``; also takes the pickled tuples of run checkpoints from before it."""
    torch.set_rng_state(state["torch"])
    npy = state["numpy"]
    if isinstance(npy, dict):
        npy = (npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["cached_gaussian"])
    np.random.set_state(npy)
    py = state["python"]
    if isinstance(py, dict):
        py = (py["version"], tuple(int(w) for w in py["words"].tolist()), py["gauss_next"])
    random.setstate(py)
