"""The trackers ``create_tracker`` builds, by name: a one-line help and the class's import path.

The single list of tracker names: ``track --tracker`` and ``track-eval run --tracker`` take their
choices and help text from it. Reading it imports no torch (the class is imported only when a
tracker is built), so ``track-eval`` lists and checks names, and scores, without torch.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

DEFAULT_TRACKER = "dimp"


@dataclass(frozen=True)
class TrackerEntry:
    name: str
    help: str  # one line, shown by --help
    target: str  # "module:Class", imported by load()

    def load(self) -> type:
        module, _, cls = self.target.partition(":")
        return getattr(importlib.import_module(module), cls)


TRACKERS: dict[str, TrackerEntry] = {}


def register(name: str, help: str, target: str) -> None:
    if name in TRACKERS:
        raise ValueError(f"tracker {name!r} registered twice")
    TRACKERS[name] = TrackerEntry(name, help, target)


def list_trackers() -> list[str]:
    return sorted(TRACKERS)


def describe_trackers() -> str:
    """``dimp: ...; siamfc: ...`` for help texts."""
    return "; ".join(f"{n}: {TRACKERS[n].help}" for n in list_trackers())


def get_tracker(name: str) -> TrackerEntry:
    try:
        return TRACKERS[name]
    except KeyError:
        raise ValueError(f"unknown tracker {name!r}; choose from {', '.join(list_trackers())}") from None


register("siamfc", "fixed exemplar, 3-scale pyramid (SiamFC)", "tracker.siamfc:SiamFCTracker")
register("dimp", "online target filter, distractor tracking, DSST scale filter, colour model",
         "tracker.dimp:DiMPTracker")
