"""VOT layout: <seq>/[color/]00000001.jpg + groundtruth.txt with x,y,w,h boxes or 8-value
polygons."""
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..sequence import Sequence
from ..textio import read_matrix
from ._common import check_frame_count, list_frames, read_list, require_dir, subdirs


def polygon_to_box(poly):
    """Axis-aligned x,y,w,h with the polygon's centre and area (the usual VOT conversion).

    The box keeps the aspect ratio of the polygon's bounding rectangle and is shrunk so that its
    area equals the polygon's (shoelace formula); the centre is the mean of the vertices.
    """
    poly = np.asarray(poly, dtype=np.float64).reshape(-1, 8)
    xs, ys = poly[:, 0::2], poly[:, 1::2]
    cx, cy = xs.mean(axis=1), ys.mean(axis=1)
    bw = xs.max(axis=1) - xs.min(axis=1)
    bh = ys.max(axis=1) - ys.min(axis=1)
    area = 0.5 * np.abs((xs * np.roll(ys, -1, axis=1) - np.roll(xs, -1, axis=1) * ys).sum(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.sqrt(area / (bw * bh))
    w, h = scale * bw, scale * bh
    return np.stack([cx - w / 2, cy - h / 2, w, h], axis=1)


def read_vot_groundtruth(path):
    rows = read_matrix(path, columns=(4, 8), allow_nan=True)
    return polygon_to_box(rows) if rows.shape[1] == 8 else rows


def sequence_in_dir(folder, dataset="vot"):
    folder = Path(folder)
    gt_path = folder / "groundtruth.txt"
    first = gt_path.read_text(errors="replace")[:1] if gt_path.is_file() else ""
    if first.lower() == "m":
        raise DatasetError("mask annotations (VOT2020+) are not supported; use box ground truth",
                           gt_path, 1)
    gt = read_vot_groundtruth(gt_path)
    image_dir = next((folder / d for d in ("color", "img") if (folder / d).is_dir()), folder)
    frames = list_frames(image_dir)
    check_frame_count(frames, len(gt), gt_path)
    visible = np.isfinite(gt).all(axis=1) & (np.nan_to_num(gt[:, 2:]) > 0).all(axis=1)
    return Sequence(name=folder.name, gt=gt, visible=visible, frames=frames, dataset=dataset,
                    meta={"gt_file": str(gt_path)})


def load_vot(root):
    root = require_dir(root)
    if (root / "groundtruth.txt").is_file():
        return [sequence_in_dir(root)]
    listing = root / "list.txt"
    if listing.is_file():
        names = read_list(listing)
        folders = [root / n for n in names]
    else:
        folders = [d for d in subdirs(root) if (d / "groundtruth.txt").is_file()]
    if not folders:
        raise DatasetError("no VOT sequences (<seq>/groundtruth.txt)", root)
    return [sequence_in_dir(d) for d in folders]
