"""UAV123 layout: data_seq/UAV123/<seq>/000001.jpg and anno/UAV123/<seq>.txt (NaN rows = absent)."""
import numpy as np

from ..errors import DatasetError
from ..sequence import Sequence
from ..textio import read_matrix
from ._common import list_frames, require_dir

# Order of the 12 flags in anno/UAV123/att/<seq>.txt, as the UAV123 toolkit lists its attributes
# (not checked against data here: no UAV123 copy is available).
UAV_ATTRIBUTES = ("SV", "ARC", "LR", "FM", "FOC", "POC", "OV", "BC", "IV", "VC", "CM", "SOB")


def load_uav123(root, start_frames=None):
    """UAV123 sequences.

    A few annotations (bird1_1, bird1_2, ...) are parts of one frame folder (bird1); their start
    frames come from the benchmark's configuration and must be given in start_frames
    ({'bird1_2': 775, ...}); without it such a part is reported, not guessed.
    """
    root = require_dir(root)
    anno_dir = root / "anno" / "UAV123"
    data_dir = root / "data_seq" / "UAV123"
    if not anno_dir.is_dir():
        raise DatasetError("no anno/UAV123 folder", root)
    start_frames = start_frames or {}
    files = sorted(anno_dir.glob("*.txt"))
    if not files:
        raise DatasetError("no annotation files", anno_dir)
    sequences = []
    for gt_path in files:
        name = gt_path.stem
        gt = read_matrix(gt_path, allow_nan=True)
        folder, start = data_dir / name, 1
        if not folder.is_dir():
            base = name.rsplit("_", 1)[0]
            if name not in start_frames or not (data_dir / base).is_dir():
                raise DatasetError(f"no frame folder data_seq/UAV123/{name}; if it is a part of "
                                   f"data_seq/UAV123/{base}, pass its start frame", gt_path)
            folder, start = data_dir / base, int(start_frames[name])
        frames = list_frames(folder)
        if len(frames) < start - 1 + len(gt):
            raise DatasetError(f"{len(gt)} ground-truth lines from frame {start} but only "
                               f"{len(frames)} frames in {folder}", gt_path)
        frames = frames[start - 1:start - 1 + len(gt)]
        attributes = {}
        att_path = anno_dir / "att" / f"{name}.txt"
        if att_path.is_file():
            values = read_matrix(att_path, columns=(12,))[0]
            attributes = {k: bool(v) for k, v in zip(UAV_ATTRIBUTES, values)}
        visible = np.isfinite(gt).all(axis=1)
        sequences.append(Sequence(name=name, gt=gt, visible=visible, frames=frames,
                                  attributes=attributes, dataset="uav123", start_frame=start,
                                  meta={"gt_file": str(gt_path)}))
    return sequences
