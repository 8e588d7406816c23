"""Finding raw tracker results on disk and reading them aligned to sequences.

Accepted layouts under a results root:
- <root>/<tracker>/<dataset>/<seq>.txt   (what our runner and pytracking write)
- <root>/<tracker>/<seq>.txt             (published raw results, e.g. raw_results/OTB100)
- <root>/<tracker>/<seq>/<seq>_001.txt   (got10k toolkit)
Time files (<seq>_time.txt) and hidden temporary files are ignored.
"""
import os
from pathlib import Path

from .errors import EvalError
from .names import match_names
from .textio import read_matrix


def _is_result_file(name):
    return name.endswith(".txt") and not name.startswith(".") and not name.endswith("_time.txt")


def _has_results(folder):
    try:
        return any(_is_result_file(e.name) and e.is_file() for e in os.scandir(folder))
    except OSError:
        return False


def result_dir_of(tracker_dir, dataset):
    """The folder holding one tracker's per-sequence files for `dataset`, or None."""
    tracker_dir = Path(tracker_dir)
    nested = tracker_dir / dataset
    if nested.is_dir():
        return nested
    if _has_results(tracker_dir):
        return tracker_dir
    subs = [d for d in tracker_dir.iterdir() if d.is_dir() and _has_results(d)]
    # A tracker folder with exactly one dataset folder inside (e.g. <tracker>/OTB100/).
    if len(subs) == 1 and not (subs[0] / f"{subs[0].name}_001.txt").is_file():
        return subs[0]
    if any((d / f"{d.name}_001.txt").is_file() for d in subs):
        return tracker_dir
    return None


def find_trackers(results_root, dataset, names=None):
    """{tracker name: folder with its result files} under results_root.

    names restricts (and orders) the trackers; naming one without results is an error. A root
    that holds result files itself is taken as one tracker named after the folder.
    """
    root = Path(results_root)
    if not root.is_dir():
        raise EvalError(f"results directory not found: {root}")
    found = {}
    if _has_results(root):
        # <results>/<tracker>/<dataset> given directly: the tracker is the parent folder.
        found[root.parent.name if root.name == dataset else root.name] = root
    else:
        for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            r = result_dir_of(d, dataset)
            if r is not None:
                found[d.name] = r
    if names:
        missing = [n for n in names if n not in found]
        if missing:
            raise EvalError(f"no results for tracker {missing[0]!r} in {root} "
                            f"(found: {', '.join(found) or 'none'})")
        found = {n: found[n] for n in names}
    if not found:
        raise EvalError(f"no tracker results found in {root} (expected <tracker>/<seq>.txt "
                        f"or <tracker>/{dataset}/<seq>.txt)")
    return found


def index_results(folder):
    """{result name: path} of one tracker's folder, including got10k-style <seq>/<seq>_001.txt."""
    folder = Path(folder)
    out = {}
    for e in os.scandir(folder):
        if e.is_file() and _is_result_file(e.name):
            out[e.name[:-4]] = Path(e.path)
        elif e.is_dir():
            first = Path(e.path) / f"{e.name}_001.txt"
            if first.is_file():
                out[e.name] = first
    return out


def match_results(sequences, folder):
    """{sequence name: result path} for the sequences that have a result in `folder`."""
    available = index_results(folder)
    mapping = match_names([s.name for s in sequences], list(available))
    return {seq: available[name] for seq, name in mapping.items()}


def read_prediction(path, sequence):
    """A result file as an (M, 4) array aligned to the sequence's first frame.

    A file that covers the frames an omitted start skips (Tiger1 from frame 1 rather than 6) is
    shifted; NaN values are kept for the metrics to replace.
    """
    pred = read_matrix(path, columns=(4,), allow_nan=True)
    omit = sequence.init_omit
    if omit and len(pred) == len(sequence) + omit:
        pred = pred[omit:]
    return pred
