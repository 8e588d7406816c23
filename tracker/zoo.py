"""Model zoo: load a model file into the tracker's network, the manifest, budget-based selection.

Model files are ``b2track-model/1`` (format owned by ``backbones.files``):
the spec, the compressed weights and metadata, read with
``weights_only=True`` so no pickled code runs. ``tracker/zoo/manifest.json``
(format ``b2track-zoo/1``) lists the shipped files with their sha256, which
is checked before a zoo file is used; ``B2TRACK_ZOO`` points at another
folder with the same layout (a user's own zoo, or a scratch zoo in tests).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from backbones import Spec, SpecError
from backbones.files import FileFormatError, atomic_write_text, read_model, state_dict_problem, write_model

from .model import SiamNet

MANIFEST_FORMAT = "b2track-zoo/1"
ZOO_DIR = Path(__file__).with_name("zoo")
BUDGET_EPS = 1e-6  # a spec's budget is a float sum; 0.3 must select a 0.2999999 entry


class ModelError(ValueError):
    """A checkpoint or zoo entry that cannot be used; the message is one line for the user."""


# -- model files --------------------------------------------------------------

def save_model(path, model: SiamNet, spec: Spec, meta: dict | None = None) -> Path:
    return write_model(path, model.state_dict(), spec.to_dict(), meta, prefix="backbone.")


def load_model(path, sha256: str | None = None) -> tuple[SiamNet, Spec, dict]:
    """Load a model file into an eval-mode SiamNet; any problem -> ModelError (one line).

    With ``sha256`` (a zoo entry's), a file whose content differs is refused before it is read.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    if sha256 is not None and file_sha256(path) != sha256:
        raise ModelError(f"refusing {path}: its sha256 differs from the zoo manifest's (modified or damaged file)")
    try:
        state, spec_d, meta = read_model(path)
    except FileFormatError as e:
        raise ModelError(str(e)) from None
    if spec_d is None:
        raise ModelError(f"incompatible model {path}: a training checkpoint without a spec, not a model file "
                         f"(make one with mixbin finetune or tools/build_zoo.py)")
    try:
        spec = Spec.from_dict(spec_d)
    except SpecError as e:
        raise ModelError(f"incompatible model {path}: {e}") from None
    try:
        model = SiamNet(spec.backbone)
        model.backbone.set_modes(spec.units)
        model.load_state_dict(state)
    except (KeyError, RuntimeError, ValueError, TypeError) as e:
        raise ModelError(f"incompatible model {path}: weights do not fit {spec.backbone}: {state_dict_problem(e)}") from None
    return model.eval(), spec, meta


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
    found = data.get("format") if isinstance(data, dict) else None
    if found != MANIFEST_FORMAT:
        newer = str(found).startswith("b2track-zoo/")
        raise ModelError(f"zoo manifest {path}: format {found!r}"
                         + (" was written by a newer b2track" if newer else "") + f"; this one reads {MANIFEST_FORMAT!r}")
    entries = data.get("entries")
    if not isinstance(entries, list):
        raise ModelError(f"zoo manifest {path} has no 'entries' list")
    for e in entries:
        if not isinstance(e, dict) or "file" not in e or "budget" not in e:
            raise ModelError(f"zoo manifest {path}: every entry needs 'file' and 'budget'")
        e["path"] = str(folder / e["file"])
    return entries


def write_manifest(folder, entries: list[dict], about: str, default_backbone: str | None = None) -> Path:
    """Write ``folder/manifest.json`` (atomically); ``entries`` without the ``path`` that loading adds."""
    clean = [{k: v for k, v in e.items() if k != "path"} for e in entries]
    head = {"format": MANIFEST_FORMAT, "about": about}
    if default_backbone:
        head["default_backbone"] = default_backbone
    text = json.dumps({**head, "entries": clean}, indent=2) + "\n"
    return atomic_write_text(Path(folder) / "manifest.json", text)


def check_budget(budget: float) -> float:
    b = float(budget)
    if not (0.0 < b <= 1.0):
        raise ValueError(f"budget must be in (0, 1], got {budget}")
    return b


def default_backbone(folder=None) -> str | None:
    """The backbone ``--budget`` picks from when none is named: the manifest's ``default_backbone``."""
    path = (Path(folder) if folder is not None else zoo_dir()) / "manifest.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # load_manifest reports the problem
    return data.get("default_backbone") if isinstance(data, dict) else None


def select(budget: float, entries: list[dict] | None = None, backbone: str | None = None) -> dict:
    """The entry of ``backbone`` (default: the zoo's default backbone, else any) whose budget is
    closest to ``budget`` without exceeding it.

    Ties (same budget) go to the higher evaluation AUC, then to the manifest order.
    """
    b = check_budget(budget)
    if entries is None:
        entries = load_manifest()
        backbone = backbone or default_backbone()
    if backbone is not None:
        family = [e for e in entries if e.get("backbone") == backbone]
        if not family:
            have = sorted({str(e.get("backbone")) for e in entries})
            raise ModelError(f"no zoo model with backbone {backbone!r} (zoo {zoo_dir()} has: {', '.join(have) or 'no entries'})")
        entries = family
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


def fetch(url: str) -> tuple[Path, str]:
    """Download a user's checkpoint once (gdown handles Google Drive links): (cached file, its sha256).

    The cache is keyed by content: the file is ``<sha256>.pt`` and a small
    ``urls/<hash of URL>`` note names it. The download lands in a ``.part``
    file that is removed on any failure, and a file is only ever renamed to
    its final name after its hash is known, so an interrupted download never
    leaves something that later loads.
    """
    cache = cache_dir()
    note = cache / "urls" / hashlib.sha256(url.encode()).hexdigest()[:32]
    if note.is_file():
        digest = note.read_text().strip()
        if (cache / f"{digest}.pt").is_file():
            return cache / f"{digest}.pt", digest
    cache.mkdir(parents=True, exist_ok=True)
    fd, part = tempfile.mkstemp(dir=cache, suffix=".part")
    os.close(fd)
    part = Path(part)
    try:
        import gdown
        got = gdown.download(url, str(part), quiet=False, fuzzy=True)
        if not got or not part.is_file() or part.stat().st_size == 0:
            raise ModelError(f"could not download model from {url}")
        digest = file_sha256(part)
        os.replace(part, cache / f"{digest}.pt")
    except ModelError:
        raise
    except Exception as e:  # noqa: BLE001 - network, HTTP, disk: one line for the user
        raise ModelError(f"could not download model from {url}: "
                         f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    finally:
        part.unlink(missing_ok=True)
    atomic_write_text(note, digest + "\n")
    return cache / f"{digest}.pt", digest


def resolve(model: str | None, budget: float | None, backbone: str | None = None) -> tuple[Path, dict | None, str | None]:
    """(checkpoint path, zoo entry or None, sha256 the file must have or None).

    ``model`` is a path or URL (``--model``); without it, the zoo entry of
    ``backbone`` (default: the zoo's default) for ``budget``. A path inside the zoo folder is checked against its manifest
    entry too, and a downloaded file against the hash it was cached under.
    """
    if budget is not None:
        check_budget(budget)
    if model:
        if model.startswith(("http://", "https://")):
            path, digest = fetch(model)
            return path, None, digest
        path = Path(model).expanduser()
        entry = _zoo_entry_of(path)
        return path, entry, (entry or {}).get("sha256")
    entry = select(1.0 if budget is None else budget, backbone=backbone)
    return Path(entry["path"]), entry, entry.get("sha256")


def _zoo_entry_of(path: Path) -> dict | None:
    """The manifest entry of a file that sits in the zoo folder, if any."""
    folder = zoo_dir()
    try:
        if path.resolve().parent != folder.resolve() or not (folder / "manifest.json").is_file():
            return None
        entries = load_manifest(folder)
    except (OSError, ModelError):
        return None
    return next((e for e in entries if e["file"] == path.name), None)
