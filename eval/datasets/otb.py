"""OTB-2015: the image layout (<root>/<Seq>/img + groundtruth_rect*.txt) and the official
toolkit's annotation-only layout (anno/*.txt, anno/att/*.txt, initOmit/*.txt)."""
import re
from pathlib import Path

from ..errors import DatasetError
from ..names import canonical, match_names
from ..sequence import Sequence
from ..textio import read_ints, read_matrix
from ._common import list_frames, require_dir, subdirs

# Order of the 11 flags in the toolkit's anno/att/<seq>.txt files (its perfPlot attribute list).
OTB_ATTRIBUTES = ("IV", "OPR", "SV", "OCC", "DEF", "MB", "FM", "IPR", "OV", "BC", "LR")

# First scored frame of the OTB-2015 sequences whose ground truth does not start at img/0001.jpg
# (the official benchmark configuration). Tiger1's file covers frames 1..354 but scoring starts
# at 6; the others' files start at the listed frame.
OTB_START_FRAME = {"tiger1": 6, "david": 300, "blurcar1": 247, "blurcar3": 3, "blurcar4": 18}

# The 100 sequences of OTB-2015 (OTB100). The toolkit's anno/ folder holds a few more (e.g. ball),
# which subset="otb100" leaves out so that scores are over the benchmark's own set.
OTB100 = (
    "Basketball Biker Bird1 Bird2 BlurBody BlurCar1 BlurCar2 BlurCar3 BlurCar4 BlurFace BlurOwl "
    "Board Bolt Bolt2 Box Boy Car1 Car2 Car24 Car4 CarDark CarScale ClifBar Coke Couple Coupon "
    "Crossing Crowds Dancer Dancer2 David David2 David3 Deer Diving Dog Dog1 Doll DragonBaby Dudek "
    "FaceOcc1 FaceOcc2 Fish FleetFace Football Football1 Freeman1 Freeman3 Freeman4 Girl Girl2 Gym "
    "Human2 Human3 Human4-2 Human5 Human6 Human7 Human8 Human9 Ironman Jogging-1 Jogging-2 Jump "
    "Jumping KiteSurf Lemming Liquor Man Matrix Mhyang MotorRolling MountainBike Panda RedTeam "
    "Rubik Shaking Singer1 Singer2 Skater Skater2 Skating1 Skating2-1 Skating2-2 Skiing Soccer "
    "Subway Surfer Suv Sylvester Tiger1 Tiger2 Toy Trans Trellis Twinnings Vase Walking Walking2 "
    "Woman").split()

_NUMBERED_GT = re.compile(r"^groundtruth_rect\.(\d+)\.txt$")


def otb_valid(gt):
    """The toolkit's validity rule: a box counts only if all four values are > 0."""
    return (gt > 0).all(axis=1)


def load_otb(root, subset="otb100"):
    """OTB sequences from either layout, detected from what the folder holds.

    subset="otb100": when the folder holds all of OTB-2015 plus extras (the toolkit's anno/ has
    ball), keep the benchmark's 100; a partial or custom folder is kept whole. "all" keeps all.
    """
    root = require_dir(root)
    if (root / "anno").is_dir() or any(root.glob("*.txt")):
        sequences = load_otb_anno(root)
    else:
        sequences = load_otb_frames(root)
    if subset == "otb100":
        sequences = _keep_otb100(sequences)
    elif subset != "all":
        raise DatasetError(f"unknown OTB subset {subset!r} (otb100 or all)")
    return sequences


def _keep_otb100(sequences):
    """Drop sequences outside OTB100 (the toolkit's Human4.txt is the benchmark's Human4-2)."""
    keep = match_names(OTB100, [s.name for s in sequences])
    if len(keep) < len(OTB100):
        return sequences
    wanted = set(keep.values())
    return [s for s in sequences if s.name in wanted]


def _attributes(att_dir, stem):
    if att_dir is None:
        return {}
    path = _find_file(att_dir, stem)
    if path is None:
        return {}
    values = read_matrix(path, columns=(11,))[0]
    return {name: bool(v) for name, v in zip(OTB_ATTRIBUTES, values)}


def _find_file(folder, stem):
    """<folder>/<stem>.txt matched on the canonical name (the toolkit mixes cases)."""
    if folder is None:
        return None
    exact = folder / f"{stem}.txt"
    if exact.is_file():
        return exact
    for p in folder.glob("*.txt"):
        if canonical(p.stem) == canonical(stem):
            return p
    return None


def _first_dir(*candidates):
    return next((c for c in candidates if c.is_dir()), None)


def load_otb_anno(root):
    """Annotation-only sequences from the toolkit's anno/ folder (no frames)."""
    root = Path(root)
    anno_dir = root / "anno" if (root / "anno").is_dir() else root
    omit_dir = _first_dir(root / "initOmit", anno_dir / "initOmit")
    att_dir = _first_dir(anno_dir / "att", root / "att")
    files = sorted(p for p in anno_dir.glob("*.txt"))
    if not files:
        raise DatasetError("no OTB annotation files (*.txt)", anno_dir)
    sequences = []
    for path in files:
        gt = read_matrix(path)
        start, ranges = 1, []
        omit_file = _find_file(omit_dir, path.stem)
        if omit_file is not None:
            ranges = read_ints(omit_file)
            # A range that starts at frame 1 means the sequence itself starts after it (Tiger1).
            if ranges and ranges[0][0] == 1 and len(ranges[0]) == 2:
                start = ranges[0][1] + 1
        if start > len(gt):
            raise DatasetError(f"initOmit starts the sequence at frame {start}, beyond its "
                               f"{len(gt)} lines", omit_file)
        gt = gt[start - 1:]
        sequences.append(Sequence(
            name=path.stem, gt=gt, visible=otb_valid(gt),
            attributes=_attributes(att_dir, path.stem), dataset="otb", start_frame=start,
            meta={"gt_file": str(path), "init_omit_ranges": ranges}))
    return sequences


def sequences_in_dir(folder, att_dir=None):
    """The sequence(s) of one OTB folder: one per groundtruth_rect[.K].txt file (Jogging-1/-2)."""
    folder = Path(folder)
    gt_files = []
    for p in sorted(folder.glob("groundtruth_rect*.txt")):
        m = _NUMBERED_GT.match(p.name)
        if p.name == "groundtruth_rect.txt":
            gt_files.append((folder.name, p))
        elif m:
            gt_files.append((f"{folder.name}-{m.group(1)}", p))
    if not gt_files:
        raise DatasetError("no groundtruth_rect.txt", folder)
    all_frames = list_frames(folder / "img")
    sequences = []
    for name, gt_path in gt_files:
        gt = read_matrix(gt_path)
        frames = all_frames
        start = OTB_START_FRAME.get(canonical(folder.name), 1)
        skip = start - 1
        if len(frames) >= skip + len(gt):
            # Ground truth begins at the start frame; frames beyond its end are not scored.
            frames = frames[skip:skip + len(gt)]
        elif skip and len(frames) == len(gt):
            # Ground truth begins at frame 1 but scoring starts later (Tiger1).
            frames, gt = frames[skip:], gt[skip:]
        else:
            raise DatasetError(f"{len(gt)} ground-truth lines but only {len(frames)} frames "
                               "in img/", gt_path)
        sequences.append(Sequence(
            name=name, gt=gt, visible=otb_valid(gt), frames=frames,
            attributes=_attributes(att_dir, name), dataset="otb", start_frame=start,
            meta={"gt_file": str(gt_path)}))
    return sequences


def load_otb_frames(root):
    root = Path(root)
    att_dir = _first_dir(root / "anno" / "att", root / "att")
    sequences = []
    for d in subdirs(root):
        if (d / "img").is_dir() or any(d.glob("groundtruth_rect*.txt")):
            sequences.extend(sequences_in_dir(d, att_dir))
    if not sequences:
        raise DatasetError("no OTB sequences (<Seq>/img/ + groundtruth_rect.txt)", root)
    return sequences

