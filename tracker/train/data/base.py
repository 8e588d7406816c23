"""The interface every pair source implements, and the deterministic train/val split."""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

# Targets covering more of the frame than this are skipped: an object that fills the
# picture (a close-up, often cut by the frame) has no surroundings to be found in, and
# the frame edge around it would teach "the target is the image".
MAX_AREA_FRAC = 0.5


@dataclass
class Pair:
    """Two views of one object. Unpacks as ``img_z, box_z, img_x, box_x``.

    Images are BGR uint8 (H×W×3), boxes x,y,w,h float64 in each image's own
    pixels. ``key`` names the object (used to keep negatives really negative),
    ``extra`` carries source-specific data (e.g. composite masks).
    """

    img_z: np.ndarray
    box_z: np.ndarray
    img_x: np.ndarray
    box_x: np.ndarray
    key: str = ""
    kind: str = ""
    extra: dict = field(default_factory=dict)

    def __iter__(self) -> Iterator:
        return iter((self.img_z, self.box_z, self.img_x, self.box_x))


class PairSource:
    """``len(src)`` items; ``src.sample_pair(rng)`` draws one pair with numpy's Generator."""

    kind = "base"

    def __len__(self) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def sample_pair(self, rng: np.random.Generator) -> Pair:  # pragma: no cover - interface
        raise NotImplementedError


def stable_fraction(name: str, salt: str = "b2track-val") -> float:
    """A fixed number in [0, 1) per name (crc32), the same on every machine and run."""
    return zlib.crc32(f"{salt}:{name}".encode()) / 2 ** 32


def split_names(names: Sequence[str], holdout, split: str, salt: str = "b2track-val") -> list[str]:
    """Deterministic held-out subset of ``names``.

    ``holdout``: an int (that many names go to val), a float (that fraction,
    by hash, so adding names never moves old ones), "all" or "none".
    ``split``: "train" | "val" | "all".
    """
    if split == "all":
        return list(names)
    if holdout in ("all", "none", None):
        val = set(names) if holdout == "all" else set()
    elif isinstance(holdout, int) and not isinstance(holdout, bool):
        ranked = sorted(names, key=lambda n: stable_fraction(n, salt))
        val = set(ranked[:holdout])
    else:
        val = {n for n in names if stable_fraction(n, salt) < float(holdout)}
    if split == "val":
        return [n for n in names if n in val]
    if split == "train":
        return [n for n in names if n not in val]
    raise ValueError(f"split must be train, val or all, not {split!r}")


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the JPEG/PNG header, without decoding the pixels."""
    with open(path, "rb") as f:
        head = f.read(26)
        if head[:8] == b"\x89PNG\r\n\x1a\n":
            return struct.unpack(">II", head[16:24])
        if head[:2] == b"\xff\xd8":
            f.seek(2)
            while True:
                m = f.read(4)
                if len(m) < 4 or m[0] != 0xFF:
                    break
                marker, length = m[1], struct.unpack(">H", m[2:4])[0]
                if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                    h, w = struct.unpack(">HH", f.read(5)[1:5])
                    return w, h
                f.seek(length - 2, 1)
    img = cv2.imread(str(path))
    if img is None:
        raise OSError(f"cannot read image {path}")
    return img.shape[1], img.shape[0]
