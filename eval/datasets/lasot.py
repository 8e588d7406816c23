"""LaSOT: the image layout (<root>/<class>/<class>-<n>/img, groundtruth.txt, full_occlusion.txt,
out_of_view.txt) and the evaluation toolkit's layout (<seq>.txt, absent/<seq>.txt,
testing_set.txt)."""
from pathlib import Path

from ..errors import DatasetError
from ..sequence import Sequence
from ..textio import read_flags, read_matrix
from ._common import check_frame_count, list_frames, read_list, require_dir, subdirs

_LISTS = ("testing_set.txt", "training_set.txt")


def _class_of(name):
    return name.rsplit("-", 1)[0]


def load_lasot(root, subset="test"):
    """LaSOT sequences; subset='test' keeps those named in testing_set.txt when it exists."""
    root = require_dir(root)
    if (root / "absent").is_dir() or any(p.name not in _LISTS for p in root.glob("*.txt")):
        return load_lasot_anno(root, subset)
    return load_lasot_frames(root, subset)


def _wanted(root, subset):
    listing = root / "testing_set.txt"
    if subset == "test" and listing.is_file():
        return read_list(listing)
    return None


def load_lasot_anno(root, subset="test"):
    root = Path(root)
    names = _wanted(root, subset)
    if names is None:
        names = sorted(p.stem for p in root.glob("*.txt") if p.name not in _LISTS)
    if not names:
        raise DatasetError("no LaSOT annotation files (<seq>.txt)", root)
    sequences = []
    for name in names:
        gt_path = root / f"{name}.txt"
        gt = read_matrix(gt_path)
        absent = read_flags(root / "absent" / f"{name}.txt", len(gt))
        sequences.append(Sequence(name=name, gt=gt, visible=~absent, dataset="lasot",
                                  attributes={"class": _class_of(name)},
                                  meta={"gt_file": str(gt_path)}))
    return sequences


def sequence_in_dir(folder):
    """One LaSOT sequence folder: img/, groundtruth.txt, full_occlusion.txt, out_of_view.txt."""
    folder = Path(folder)
    gt_path = folder / "groundtruth.txt"
    gt = read_matrix(gt_path)
    frames = list_frames(folder / "img")
    check_frame_count(frames, len(gt), gt_path)
    occluded = read_flags(folder / "full_occlusion.txt", len(gt))
    out_of_view = read_flags(folder / "out_of_view.txt", len(gt))
    return Sequence(name=folder.name, gt=gt, visible=~(occluded | out_of_view), frames=frames,
                    dataset="lasot", attributes={"class": _class_of(folder.name)},
                    meta={"gt_file": str(gt_path)})


def load_lasot_frames(root, subset="test"):
    root = Path(root)
    folders = {}
    # Both <root>/<class>/<class>-<n> and a flat <root>/<class>-<n> are in use.
    for d in subdirs(root):
        if (d / "groundtruth.txt").is_file():
            folders[d.name] = d
        else:
            for s in subdirs(d):
                if (s / "groundtruth.txt").is_file() or (s / "img").is_dir():
                    folders[s.name] = s
    names = _wanted(root, subset)
    if names is None:
        names = sorted(folders)
    missing = [n for n in names if n not in folders]
    if missing:
        raise DatasetError(f"{len(missing)} listed sequences have no folder (first: {missing[0]})",
                           root / "testing_set.txt")
    if not names:
        raise DatasetError("no LaSOT sequences (<class>/<class>-<n>/groundtruth.txt)", root)
    return [sequence_in_dir(folders[n]) for n in names]
