"""Model zoo: checkpoint files with their spec, the manifest, and budget-based selection.

A checkpoint is ``torch.save``d as::

    {"format": "b2track-model/1", "spec": Spec.to_dict(),
     "state": compress_state(SiamNet.state_dict(), spec.units, prefix="backbone."),
     "meta": {...}}

It holds tensors and plain containers only, so it loads with
``weights_only=True`` (no pickled code runs). ``tracker/zoo/manifest.json``
lists the shipped files; ``B2TRACK_ZOO`` points at another folder with the
same layout (a user's own zoo, or a scratch zoo in tests).
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import torch

from backbones import Spec, SpecError
from backbones.checkpoint import compress_state, decompress_state

from .model import SiamNet

FORMAT = "b2track-model/1"
MANIFEST_FORMAT = "b2track-zoo/1"
ZOO_DIR = Path(__file__).with_name("zoo")
BUDGET_EPS = 1e-6  # a spec's budget is a float sum; 0.3 must select a 0.2999999 entry


class ModelError(ValueError):
    """A checkpoint or zoo entry that cannot be used; the message is one line for the user."""


# -- checkpoint files ---------------------------------------------------------

def save_model(path, model: SiamNet, spec: Spec, meta: dict | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = compress_state(model.state_dict(), spec.units, prefix="backbone.")
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": FORMAT, "spec": spec.to_dict(), "state": state, "meta": dict(meta or {})}, tmp)
    os.replace(tmp, path)  # never leave a half-written checkpoint under the final name
    return path


def load_model(path) -> tuple[SiamNet, Spec, dict]:
    """Load a zoo checkpoint into an eval-mode SiamNet; any problem -> ModelError (one line)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    try:
        with warnings.catch_warnings():  # torch's pickle-protocol chatter would break the one-line contract
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, not a torch file, or pickled objects beyond tensors
        raise ModelError(f"cannot read model {path}: not a b2track checkpoint or corrupt "
                         f"({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ModelError(f"incompatible model {path}: format {found!r}, expected {FORMAT!r}")
    try:
        spec = Spec.from_dict(ckpt.get("spec"))
    except SpecError as e:
        raise ModelError(f"incompatible model {path}: {e}") from None
    try:
        model = SiamNet(spec.backbone)
        model.backbone.set_modes(spec.units)
        model.load_state_dict(decompress_state(ckpt["state"]))
    except (KeyError, RuntimeError, ValueError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"incompatible model {path}: weights do not fit {spec.backbone}: {first}") from None
    return model.eval(), spec, dict(ckpt.get("meta") or {})


# -- manifest and selection ---------------------------------------------------

def zoo_dir() -> Path:
    return Path(os.environ.get("B2TRACK_ZOO") or ZOO_DIR)


def load_manifest(folder=None) -> list[dict]:
    folder = Path(folder) if folder is not None else zoo_dir()
    path = folder / "manifest.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"no zoo manifest at {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelError(f"zoo manifest {path} is not valid JSON: {e}") from None
    entries = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ModelError(f"zoo manifest {path} has no 'entries' list")
    for e in entries:
        if not isinstance(e, dict) or "file" not in e or "budget" not in e:
            raise ModelError(f"zoo manifest {path}: every entry needs 'file' and 'budget'")
        e["path"] = str(folder / e["file"])
    return entries


def check_budget(budget: float) -> float:
    b = float(budget)
    if not (0.0 < b <= 1.0):
        raise ValueError(f"budget must be in (0, 1], got {budget}")
    return b


def select(budget: float, entries: list[dict] | None = None) -> dict:
    """The entry whose budget is closest to ``budget`` without exceeding it.

    Ties (same budget) go to the higher evaluation AUC, then to the manifest order.
    """
    b = check_budget(budget)
    entries = load_manifest() if entries is None else entries
    fit = [e for e in entries if float(e["budget"]) <= b + BUDGET_EPS]
    if not fit:
        have = ", ".join(f"{float(e['budget']):.3f}" for e in sorted(entries, key=lambda e: float(e["budget"])))
        raise ModelError(f"no zoo model at or below budget {b:g} (zoo {zoo_dir()} has: {have or 'no entries'})")
    return max(fit, key=lambda e: (float(e["budget"]), _auc(e)))


def _auc(entry: dict) -> float:
    ev = entry.get("eval") or {}
    try:
        return float(ev.get("auc", -1.0)) if isinstance(ev, dict) else float(ev)
    except (TypeError, ValueError):
        return -1.0


# -- --model: a path or a URL --------------------------------------------------

def cache_dir() -> Path:
    return Path(os.environ.get("B2TRACK_CACHE") or Path.home() / ".cache" / "b2track") / "models"


def fetch(url: str) -> Path:
    """Download a user's checkpoint once (gdown handles Google Drive links); cached by URL."""
    out = cache_dir() / (hashlib.sha1(url.encode()).hexdigest()[:16] + ".pt")
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        import gdown
        got = gdown.download(url, str(out) + ".part", quiet=False, fuzzy=True)
    except Exception as e:
        raise ModelError(f"could not download model from {url}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if not got or not Path(str(out) + ".part").is_file():
        raise ModelError(f"could not download model from {url}")
    os.replace(str(out) + ".part", out)
    return out


def resolve(model: str | None, budget: float | None) -> tuple[Path, dict | None]:
    """Checkpoint path for ``--model`` (path or URL) or, without it, the zoo entry for ``budget``."""
    if budget is not None:
        check_budget(budget)
    if model:
        if model.startswith(("http://", "https://")):
            return fetch(model), None
        return Path(model).expanduser(), None
    entry = select(1.0 if budget is None else budget)
    return Path(entry["path"]), entry
