"""A folder of mixed sequences (e.g. ../shared/data/sequences with otb/* and vot/*): every
sub-folder that looks like a sequence of a known layout becomes one or more Sequences."""
from pathlib import Path

from ..errors import DatasetError
from . import got10k, lasot, otb, vot
from ._common import require_dir, subdirs

_MAX_DEPTH = 4


def _sequences_at(d):
    """The sequences stored directly in folder d, or None when d is not a sequence folder."""
    if any(d.glob("groundtruth_rect*.txt")):
        return otb.sequences_in_dir(d)
    if not (d / "groundtruth.txt").is_file():
        return None
    if (d / "full_occlusion.txt").is_file():
        return [lasot.sequence_in_dir(d)]
    if (d / "absence.label").is_file() or (d / "cover.label").is_file():
        return [got10k.sequence_in_dir(d, dataset="folder")]
    return [vot.sequence_in_dir(d, dataset="folder")]


def load_folder(root):
    root = require_dir(root)
    found = []

    def walk(d, depth):
        seqs = _sequences_at(d)
        if seqs is not None:
            found.extend((d, s) for s in seqs)
            return
        if depth < _MAX_DEPTH:
            for sub in subdirs(d):
                walk(sub, depth + 1)

    walk(root, 0)
    if not found:
        raise DatasetError("no sequences found (looked for groundtruth_rect.txt / groundtruth.txt)",
                           root)
    counts = {}
    for _, s in found:
        counts[s.name] = counts.get(s.name, 0) + 1
    sequences = []
    for d, s in found:
        # Two layouts may reuse a name; the parent folder tells them apart in result file names.
        if counts[s.name] > 1:
            s.name = f"{Path(d).parent.name}_{s.name}"
        s.dataset = "folder"
        sequences.append(s)
    return sequences
