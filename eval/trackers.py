"""Tracker names the CLI accepts, turned into picklable factories for the runner.

Peers come from OpenCV; ours ('siamfc', 'dimp') come from tracker.api.create_tracker, imported
only when asked for so that the harness works (and scores) without the tracker package.
"""
from functools import partial

from . import peers
from .errors import EvalError

PEERS = ("csrt", "kcf", "nanotrack")
OURS = ("siamfc", "dimp")
NAMES = PEERS + OURS


def _peer(name, nanotrack_dir=None):
    if name == "nanotrack":
        return peers.nanotrack(nanotrack_dir)
    return getattr(peers, name)()


def _ours(name, budget=None, model=None, threads=None, params=None):
    from tracker.api import create_tracker

    return create_tracker(name, budget=budget, model=model, threads=threads, **(params or {}))


def check_ours_available():
    try:
        from tracker.api import create_tracker  # noqa: F401
    except Exception as e:  # noqa: BLE001 - any import failure means "not available"
        raise EvalError(f"our trackers need tracker.api.create_tracker, which cannot be imported "
                        f"({type(e).__name__}: {e})") from None


def make_factory(name, budget=None, model=None, threads=None, nanotrack_dir=None, params=None):
    """A picklable zero-argument callable building a fresh tracker `name` (checked here, so that
    a missing dependency fails once, before any worker starts)."""
    if name in PEERS:
        if name == "nanotrack":
            peers.nanotrack_files(nanotrack_dir)
        factory = partial(_peer, name, nanotrack_dir)
        # Building the OpenCV object once is cheap and surfaces a missing contrib module or a
        # bad ONNX file here rather than in every worker.
        try:
            factory()._make()
        except EvalError:
            raise
        except Exception as e:  # noqa: BLE001 - cv2.error and friends
            reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            raise EvalError(f"cannot create OpenCV tracker {name!r}: {reason}") from None
        return factory
    if name in OURS:
        check_ours_available()
        factory = partial(_ours, name, budget, model, threads, params)
        # One build here turns a missing checkpoint or a bad budget into one clear error
        # instead of the same failure in every sequence.
        try:
            factory()
        except Exception as e:  # noqa: BLE001 - ValueError, zoo.ModelError, ...
            raise EvalError(f"cannot create tracker {name!r}: {e}") from None
        return factory
    raise EvalError(f"unknown tracker {name!r} (choose from {', '.join(NAMES)})")


def default_label(name, budget=None):
    """Result folder name: budgets get their own folder so runs at different budgets never
    resume into each other."""
    return name if budget is None else f"{name}_b{budget:g}"
