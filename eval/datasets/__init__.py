"""Dataset loaders: each returns a list of eval.sequence.Sequence, reading no image."""
from ..errors import EvalError
from .folder import load_folder
from .got10k import load_got10k
from .lasot import load_lasot
from .otb import load_otb
from .uav123 import load_uav123
from .vot import load_vot, polygon_to_box

LOADERS = {
    "otb": load_otb,
    "lasot": load_lasot,
    "got10k": load_got10k,
    "vot": load_vot,
    "uav123": load_uav123,
    "folder": load_folder,
}


def load_dataset(name, root, **options):
    """Sequences of dataset `name` (a key of LOADERS) stored under `root`."""
    try:
        loader = LOADERS[name]
    except KeyError:
        raise EvalError(f"unknown dataset {name!r} (choose from {', '.join(LOADERS)})") from None
    return loader(root, **options)


__all__ = ["LOADERS", "load_dataset", "load_folder", "load_got10k", "load_lasot", "load_otb",
           "load_uav123", "load_vot", "polygon_to_box"]
