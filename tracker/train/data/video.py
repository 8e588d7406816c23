"""Video sequences with per-frame boxes: GOT-10k, LaSOT, TrackingNet and plain (OTB-like) layouts."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import MAX_AREA_FRAC, Pair, PairSource, image_size, split_names
from .crops import read_for_box
from .paths import check_training_path

IMG_EXT = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass
class Sequence:
    name: str
    frames: list[Path]
    boxes: np.ndarray  # N×4 x,y,w,h
    valid: np.ndarray  # N bool: visible and a usable box

    def __len__(self) -> int:
        return len(self.frames)


def read_boxes(path: Path) -> np.ndarray:
    """Boxes one per line; commas, tabs or spaces; 'nan' accepted."""
    rows = []
    for ln in Path(path).read_text().splitlines():
        ln = ln.strip()
        if ln:
            rows.append([float(v) for v in re.split(r"[,\s]+", ln)[:4]])
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def read_flags(path: Path) -> np.ndarray | None:
    """0/1 (or small int) flags, one per line or comma-separated on one line."""
    if not path.is_file():
        return None
    txt = path.read_text().strip()
    if not txt:
        return None
    return np.asarray([int(float(v)) for v in re.split(r"[,\s]+", txt) if v], dtype=np.int64)


def _images(folder: Path, numeric: bool = False) -> list[Path]:
    fs = [p for p in folder.iterdir() if p.suffix.lower() in IMG_EXT]
    if numeric:  # TrackingNet: 0.jpg, 1.jpg, ... 10.jpg
        return sorted(fs, key=lambda p: int(p.stem) if p.stem.isdigit() else p.stem)
    return sorted(fs)


def _make(name: str, frames: list[Path], boxes: np.ndarray, invisible: np.ndarray | None = None,
          min_size: float = 2.0) -> Sequence | None:
    n = min(len(frames), len(boxes))
    if n < 2:  # test splits carry only the first box
        return None
    frames, boxes = frames[:n], boxes[:n]
    valid = np.all(np.isfinite(boxes), axis=1) & (boxes[:, 2] >= min_size) & (boxes[:, 3] >= min_size)
    if invisible is not None:
        inv = np.zeros(n, bool)
        m = min(n, len(invisible))
        inv[:m] = invisible[:m]
        valid &= ~inv
    if valid.sum() < 1:
        return None
    return Sequence(name, frames, boxes, valid)


def _union(n: int, *flags) -> np.ndarray:
    """OR of per-frame flag arrays (any length) as an n-frame bool mask."""
    out = np.zeros(n, bool)
    for f in flags:
        if f is not None:
            m = min(n, len(f))
            out[:m] |= np.asarray(f[:m]).astype(bool)
    return out


def load_got10k(root) -> list[Sequence]:
    """``root/<seq>/{00000001.jpg.., groundtruth.txt, absence.label, cover.label}`` (list.txt optional)."""
    root = check_training_path(root)
    lst = root / "list.txt"
    names = [ln.strip() for ln in lst.read_text().splitlines() if ln.strip()] if lst.is_file() else \
        sorted(p.parent.name for p in root.glob("*/groundtruth.txt"))
    out = []
    for n in names:
        d = root / n
        if not (d / "groundtruth.txt").is_file():
            continue
        check_training_path(d)  # a sequence inside the eval folder is an error
        absent = read_flags(d / "absence.label")
        cover = read_flags(d / "cover.label")  # 0 = fully covered
        frames = _images(d)
        inv = _union(len(frames), absent, None if cover is None else cover == 0)
        s = _make(f"got10k/{n}", frames, read_boxes(d / "groundtruth.txt"), inv)
        if s:
            out.append(s)
    return out


def load_lasot(root) -> list[Sequence]:
    """``root/<class>/<class>-<k>/{img/*.jpg, groundtruth.txt, full_occlusion.txt, out_of_view.txt}``."""
    root = check_training_path(root)
    gts = sorted(root.glob("*/*/groundtruth.txt")) or sorted(root.glob("*/groundtruth.txt"))
    out = []
    for gt in gts:
        d = gt.parent
        check_training_path(d)  # a sequence inside the eval folder is an error
        img = d / "img" if (d / "img").is_dir() else d
        frames = _images(img)
        inv = _union(len(frames), read_flags(d / "full_occlusion.txt"), read_flags(d / "out_of_view.txt"))
        s = _make(f"lasot/{d.name}", frames, read_boxes(gt), inv)
        if s:
            out.append(s)
    return out


def load_trackingnet(root) -> list[Sequence]:
    """``root/TRAIN_i/{frames/<seq>/<k>.jpg, anno/<seq>.txt}``; root may be one TRAIN_i folder."""
    root = check_training_path(root)
    chunks = [root] if (root / "anno").is_dir() else sorted(p for p in root.iterdir() if (p / "anno").is_dir())
    out = []
    for ch in chunks:
        for anno in sorted((ch / "anno").glob("*.txt")):
            d = ch / "frames" / anno.stem
            if not d.is_dir():
                continue
            check_training_path(d)  # a sequence inside the eval folder is an error
            s = _make(f"trackingnet/{ch.name}/{anno.stem}", _images(d, numeric=True), read_boxes(anno))
            if s:
                out.append(s)
    return out


def load_plain(root) -> list[Sequence]:
    """``root/<seq>/{groundtruth_rect.txt | groundtruth.txt}`` with frames in ``img/`` or next to it."""
    root = check_training_path(root)
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        gt = next((d / n for n in ("groundtruth_rect.txt", "groundtruth.txt") if (d / n).is_file()), None)
        if gt is None:
            continue
        check_training_path(d)  # a sequence inside the eval folder is an error
        img = d / "img" if (d / "img").is_dir() else d
        s = _make(f"{root.name}/{d.name}", _images(img), read_boxes(gt))
        if s:
            out.append(s)
    return out


LOADERS = {"got10k": load_got10k, "lasot": load_lasot, "trackingnet": load_trackingnet, "plain": load_plain}


def load_sequences(layout: str, root, holdout="none", split: str = "train") -> list[Sequence]:
    """Load one folder in ``layout`` and keep the ``split`` part (see base.split_names)."""
    if layout not in LOADERS:
        raise ValueError(f"unknown video layout {layout!r}; one of {sorted(LOADERS)}")
    seqs = LOADERS[layout](root)
    keep = set(split_names([s.name for s in seqs], holdout, split))
    return [s for s in seqs if s.name in keep]


class VideoSource(PairSource):
    """Two frames of one sequence, at most ``max_gap`` frames apart, both with valid boxes
    covering at most ``max_area_frac`` of the frame.

    Sequences are drawn uniformly (short clips count as much as long ones,
    as in SiamFC); frames are decoded at the coarsest resolution the crop
    needs (JPEG reduced decoding), so the returned images may be 1/2..1/8
    of the original with boxes scaled to match.
    """

    kind = "video"

    def __init__(self, sequences: list[Sequence], max_gap: int = 100, out_scale: float = 1.5,
                 max_area_frac: float = MAX_AREA_FRAC):
        seqs, usable = [], []
        for s in sequences:
            check_training_path(s.frames[0])
            w, h = image_size(s.frames[0])  # frames of a sequence share one size
            ok = s.valid & (s.boxes[:, 2] * s.boxes[:, 3] <= max_area_frac * w * h)
            if ok.any():
                seqs.append(s)
                usable.append(np.flatnonzero(ok))
        self.sequences = seqs
        self.max_gap = int(max_gap)
        self.out_scale = out_scale
        self._valid_idx = usable

    def __len__(self) -> int:
        return int(sum(len(v) for v in self._valid_idx))

    def sample_indices(self, rng: np.random.Generator) -> tuple[int, int, int]:
        k = int(rng.integers(len(self.sequences)))
        v = self._valid_idx[k]
        i = int(v[rng.integers(len(v))])
        near = v[np.abs(v - i) <= self.max_gap]
        j = int(near[rng.integers(len(near))])
        return k, i, j

    def sample_pair(self, rng: np.random.Generator) -> Pair:
        if not self.sequences:
            raise RuntimeError("VideoSource has no sequences")
        k, i, j = self.sample_indices(rng)
        s = self.sequences[k]
        img_z, box_z = read_for_box(s.frames[i], s.boxes[i], 1.1)
        img_x, box_x = read_for_box(s.frames[j], s.boxes[j], self.out_scale)
        return Pair(img_z, box_z, img_x, box_x, key=s.name, kind=self.kind, extra={"frames": (i, j)})
