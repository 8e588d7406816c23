"""GOT-10k layout: <root>/<split>/list.txt and <seq>/00000001.jpg, groundtruth.txt,
absence.label, cover.label, meta_info.ini."""
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..sequence import Sequence
from ..textio import _lines, read_flags, read_matrix
from ._common import list_frames, read_list, require_dir

_META_KEYS = ("object_class", "motion_class", "major_class", "root_class", "motion_adverb")


def _read_meta(path):
    meta = {}
    if not path.is_file():
        return meta
    for line in _lines(path):
        key, sep, value = line.partition(":")
        if sep:
            meta[key.strip()] = value.strip()
    return meta


def _resolution(text, path):
    try:
        w, h = (int(v) for v in text.strip("() ").split(","))
    except ValueError:
        raise DatasetError(f"bad resolution {text!r}", path) from None
    return (w, h)


def sequence_in_dir(folder, dataset="got10k"):
    folder = Path(folder)
    gt_path = folder / "groundtruth.txt"
    frames = list_frames(folder)
    gt = read_matrix(gt_path)
    meta = {"gt_file": str(gt_path)}
    if len(gt) == 1 and len(frames) > 1:
        # The test split ships only the first box; the rest is scored by the GOT-10k server.
        gt = np.vstack([gt, np.full((len(frames) - 1, 4), np.nan)])
        meta["first_box_only"] = True
    elif len(gt) != len(frames):
        raise DatasetError(f"{len(gt)} ground-truth lines but {len(frames)} frames", gt_path)
    visible = np.isfinite(gt).all(axis=1)
    cover_path, absence_path = folder / "cover.label", folder / "absence.label"
    if cover_path.is_file():
        # The toolkit scores only frames whose cover level is > 0 (some part of the target shows).
        cover = read_matrix(cover_path, columns=(1,))[:, 0]
        if len(cover) != len(frames):
            raise DatasetError(f"has {len(cover)} lines but the sequence has {len(frames)} frames",
                               cover_path)
        visible &= cover > 0
    if absence_path.is_file():
        visible &= ~read_flags(absence_path, len(frames))
    info = _read_meta(folder / "meta_info.ini")
    if "resolution" in info:
        meta["resolution"] = _resolution(info["resolution"], folder / "meta_info.ini")
    attributes = {k: info[k] for k in _META_KEYS if k in info}
    return Sequence(name=folder.name, gt=gt, visible=visible, frames=frames, attributes=attributes,
                    dataset=dataset, meta=meta)


def load_got10k(root, split="val"):
    """Sequences of one split; root is the dataset root (train/val/test inside) or the split."""
    root = require_dir(root)
    split_dir = root if (root / "list.txt").is_file() else root / split
    listing = split_dir / "list.txt"
    if not listing.is_file():
        raise DatasetError(f"no list.txt (expected <root>/{split}/list.txt or <root>/list.txt)",
                           root)
    names = read_list(listing)
    if not names:
        raise DatasetError("lists no sequences", listing)
    sequences = []
    for name in names:
        folder = split_dir / name
        if not folder.is_dir():
            raise DatasetError(f"listed sequence {name} has no folder", listing)
        sequences.append(sequence_in_dir(folder))
    return sequences
