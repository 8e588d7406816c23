"""Tracker names the CLI accepts, turned into picklable factories for the runner.

The OpenCV peers are registered here; ours come from ``tracker.registry`` (names and help, no
torch) and are built by ``tracker.api.create_tracker``, imported only when one of ours runs, so
the harness lists trackers and scores without torch. Neither is imported with this module.
"""
from dataclasses import dataclass
from functools import partial
from typing import Callable

from . import peers
from .errors import EvalError


@dataclass(frozen=True)
class Peer:
    help: str  # one line, shown by track-eval run --help
    make: Callable  # a function of eval.peers (picklable, for the workers)


PEERS = {
    "csrt": Peer("OpenCV CSRT (correlation filter with channel and spatial reliability)", peers.csrt),
    "kcf": Peer("OpenCV KCF (kernelized correlation filter)", peers.kcf),
    "nanotrack": Peer("OpenCV NanoTrack v2 (small Siamese network in ONNX; needs --nanotrack-dir)",
                      peers.nanotrack),
}


def ours():
    """Our trackers' names (tracker.registry)."""
    from tracker.registry import list_trackers

    return list_trackers()


def names():
    """Every name ``track-eval run --tracker`` accepts: the peers, then ours."""
    return list(PEERS) + ours()


def describe():
    """One help line per tracker, for ``--help``."""
    from tracker.registry import describe_trackers

    return "; ".join(f"{n}: {p.help}" for n, p in PEERS.items()) + "; " + describe_trackers()


def _peer(name, nanotrack_dir=None):
    if name == "nanotrack":
        return peers.nanotrack(nanotrack_dir)
    return PEERS[name].make()


def _ours(name, budget=None, model=None, threads=None, params=None, backbone=None):
    from tracker.api import create_tracker

    return create_tracker(name, budget=budget, model=model, threads=threads, backbone=backbone, **(params or {}))


def check_ours_available():
    try:
        from tracker.api import create_tracker  # noqa: F401
    except Exception as e:  # noqa: BLE001 - any import failure means "not available"
        raise EvalError(f"our trackers need tracker.api.create_tracker, which cannot be imported "
                        f"({type(e).__name__}: {e})") from None


def make_factory(name, budget=None, model=None, threads=None, nanotrack_dir=None, params=None, backbone=None):
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
    if name in ours():
        check_ours_available()
        factory = partial(_ours, name, budget, model, threads, params, backbone)
        # One build here turns a missing checkpoint or a bad budget into one clear error
        # instead of the same failure in every sequence.
        try:
            factory()
        except Exception as e:  # noqa: BLE001 - ValueError, zoo.ModelError, ...
            raise EvalError(f"cannot create tracker {name!r}: {e}") from None
        return factory
    raise EvalError(f"unknown tracker {name!r} (choose from {', '.join(names())})")


def default_label(name, budget=None, backbone=None):
    """Result folder name: budgets (and zoo families) get their own folder so runs at different
    budgets never resume into each other."""
    name = name if backbone is None else f"{name}_{backbone}"
    return name if budget is None else f"{name}_b{budget:g}"
