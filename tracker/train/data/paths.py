"""Where the data lives, and the guard that keeps evaluation sequences out of training."""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]  # tracker/train/data/paths.py -> the checkout
SHARED = REPO.parent / "shared"
DEFAULT_CACHE = REPO / "data_cache"


class EvalDataError(ValueError):
    """Raised when a training source points at evaluation data."""


def eval_roots() -> list[Path]:
    """Folders that must never feed training (the shared evaluation sequences).

    ``B2TRACK_EVAL_DIRS`` (os.pathsep-separated) adds more, e.g. a user's own
    benchmark copies.
    """
    roots = [SHARED / "data" / "sequences"]
    extra = os.environ.get("B2TRACK_EVAL_DIRS", "")
    roots += [Path(p) for p in extra.split(os.pathsep) if p]
    return [r.resolve() for r in roots]


def _is_within(p: Path, root: Path) -> bool:
    return p == root or root in p.parents


def check_training_path(path: str | os.PathLike) -> Path:
    """Return the resolved path, or raise EvalDataError if it is evaluation data.

    Resolving follows symlinks, so a link into the eval folder is caught too; a
    path through any `shared/data/sequences` (another clone of shared/) as well.
    """
    p = Path(path).expanduser().resolve()
    for root in eval_roots():
        if _is_within(p, root):
            raise EvalDataError(f"{path} is evaluation data ({root}); it must never be used for training")
    parts = p.parts
    for i in range(len(parts) - 2):
        if parts[i:i + 3] == ("shared", "data", "sequences"):
            raise EvalDataError(f"{path} lies in a shared/data/sequences folder (evaluation data); not for training")
    return p

