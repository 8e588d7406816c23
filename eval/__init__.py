"""b2track's evaluation harness: dataset loaders, official OTB/LaSOT/GOT-10k metrics, a
parallel resumable runner, peer trackers, reports, and the `track-eval` CLI.

Importing the package is cheap (numpy only); OpenCV, matplotlib and our tracker package are
imported where they are used.
"""
from .errors import DatasetError, EvalError
from .sequence import Sequence

__all__ = ["DatasetError", "EvalError", "Sequence"]
