"""Dataset loaders: each returns a list of eval.sequence.Sequence, reading no image.

``DATASETS`` is the one list of dataset names: ``track-eval --dataset`` takes its choices and
help from it, scoring its official convention, reports whether normalized precision is shown.
"""
from dataclasses import dataclass
from typing import Callable

from ..errors import EvalError
from .folder import load_folder
from .got10k import load_got10k
from .lasot import load_lasot
from .otb import load_otb
from .uav123 import load_uav123
from .vot import load_vot, polygon_to_box


@dataclass(frozen=True)
class Dataset:
    name: str
    help: str  # one line, shown by --help
    load: Callable  # load(root, **options) -> [Sequence]
    convention: str  # the official toolkit's scoring convention (eval.metrics.CONVENTIONS)
    norm_precision: bool = False  # the toolkit also reports normalized precision


DATASETS = {d.name: d for d in (
    Dataset("otb", "OTB-2015, <Seq>/img + groundtruth_rect.txt, or the toolkit's anno/", load_otb, "otb"),
    Dataset("lasot", "LaSOT, <class>/<class>-<n>/img + groundtruth.txt, or the toolkit's <seq>.txt + absent/",
            load_lasot, "lasot", norm_precision=True),
    Dataset("got10k", "GOT-10k, <split>/list.txt + <seq>/ frames and groundtruth.txt", load_got10k, "lasot",
            norm_precision=True),
    Dataset("vot", "VOT, <seq>/[color/] frames + groundtruth.txt (boxes or polygons)", load_vot, "lasot"),
    Dataset("uav123", "UAV123, data_seq/UAV123/<seq>/ + anno/UAV123/<seq>.txt", load_uav123, "lasot"),
    Dataset("folder", "any folder of sequences in the OTB, GOT-10k, LaSOT or VOT layout", load_folder, "otb"),
)}


def load_dataset(name, root, **options):
    """Sequences of dataset `name` (a key of DATASETS) stored under `root`."""
    try:
        dataset = DATASETS[name]
    except KeyError:
        raise EvalError(f"unknown dataset {name!r} (choose from {', '.join(DATASETS)})") from None
    return dataset.load(root, **options)


def describe_datasets():
    """``otb: ...; lasot: ...`` for help texts."""
    return "; ".join(f"{d.name}: {d.help}" for d in DATASETS.values())


__all__ = ["DATASETS", "Dataset", "describe_datasets", "load_dataset", "load_folder", "load_got10k", "load_lasot", "load_otb",
           "load_uav123", "load_vot", "polygon_to_box"]
