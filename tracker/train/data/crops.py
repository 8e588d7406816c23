"""SiamFC exemplar/search crops as one affine warp, jitter included.

Geometry (box convention, centre, context extent, crop sizes) is
``tracker.geometry``'s, the same as inference's: with no jitter the target
centre maps exactly to the crop centre.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ...geometry import CONTEXT, EXEMPLAR_SIZE, SEARCH_SIZE, context_size  # noqa: F401  (re-exported)


@dataclass
class Crop:
    image: np.ndarray  # out_size × out_size × C, same dtype as the input
    offset_yx: tuple[float, float]  # target centre minus crop centre, crop pixels (dy, dx)
    box: np.ndarray  # target box x,y,w,h in crop coordinates (float64)
    matrix: np.ndarray  # 2×3 affine image -> crop


def crop_matrix(box, out_size: int, *, exemplar_size: int = EXEMPLAR_SIZE, context: float = CONTEXT,
                scale: float = 1.0, aspect: float = 1.0, angle: float = 0.0,
                shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Affine image -> crop.

    Unjittered, the scale is exemplar_size / context_size(w, h) for *any*
    out_size, so the 255 search crop covers sz·255/127 image pixels (SiamFC).
    Jitter: ``scale`` multiplies the target size in the crop, ``aspect``
    stretches x by sqrt(aspect) and y by 1/sqrt(aspect), ``angle`` rotates
    (degrees, counter-clockwise on screen) about the target centre, and
    ``shift`` = (dx, dy) moves the target centre away from the crop centre.
    """
    x, y, w, h = (float(v) for v in box)
    s = exemplar_size / context_size(w, h, context) * scale
    sa = math.sqrt(aspect)
    c, sn = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    # rotation (y points down, so negate sin for screen-CCW) after anisotropic scale
    a = np.array([[c * s * sa, sn * s / sa], [-sn * s * sa, c * s / sa]])
    centre = np.array([x + (w - 1) / 2, y + (h - 1) / 2])
    out_c = np.array([(out_size - 1) / 2 + shift[0], (out_size - 1) / 2 + shift[1]])
    return np.hstack([a, (out_c - a @ centre)[:, None]])


def transform_box(box, m: np.ndarray) -> np.ndarray:
    """Box x,y,w,h through affine m.

    Centre maps exactly; the size is the axis-aligned extent of the box's
    inscribed ellipse under m. Without rotation that is the exact box; with
    rotation it is tighter than the rotated corners' hull, closer to the
    object a rotated box holds.
    """
    x, y, w, h = (float(v) for v in box)
    c = m[:, :2] @ np.array([x + (w - 1) / 2, y + (h - 1) / 2]) + m[:, 2]
    a = m[:, :2]
    nw = math.hypot(a[0, 0] * w, a[0, 1] * h)
    nh = math.hypot(a[1, 0] * w, a[1, 1] * h)
    # back from pixel-centre to edge convention: centre = x + (w-1)/2
    return np.array([c[0] - (nw - 1) / 2, c[1] - (nh - 1) / 2, nw, nh])


def warp(img: np.ndarray, m: np.ndarray, out_size: int | tuple[int, int], pad=None,
         interp: int = cv2.INTER_LINEAR) -> np.ndarray:
    """warpAffine with mean-colour padding (SiamFC) unless ``pad`` is given."""
    if pad is None:
        pad = cv2.mean(img)[:img.shape[2] if img.ndim == 3 else 1]
    size = (out_size, out_size) if isinstance(out_size, int) else out_size
    return cv2.warpAffine(img, m, size, flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=pad)


def crop(img: np.ndarray, box, out_size: int, pad=None, **jitter) -> Crop:
    """SiamFC crop of ``img`` around ``box``; ``jitter`` as in crop_matrix.

    Returns the crop, where the target centre lands (offset_yx = (dy, dx) from
    the crop centre, equal to the requested shift) and the target box in crop
    coordinates.
    """
    m = crop_matrix(box, out_size, **jitter)
    patch = warp(img, m, out_size, pad)
    dx, dy = jitter.get("shift", (0.0, 0.0))
    return Crop(patch, (float(dy), float(dx)), transform_box(box, m), m)


def decode_factor(box, out_scale: float = 1.0, exemplar_size: int = EXEMPLAR_SIZE,
                  context: float = CONTEXT) -> int:
    """Largest JPEG reduced-decode factor (1, 2, 4, 8) that keeps the crop a downsample.

    A crop at scale s < 1/f can be cut from an image decoded at 1/f without loss
    and decodes several times faster; ``out_scale`` is the largest scale jitter
    to be applied.
    """
    s = exemplar_size / context_size(float(box[2]), float(box[3]), context) * out_scale
    f = 1
    while f < 8 and s * f * 2 <= 1.0:
        f *= 2
    return f


_REDUCED = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}


def read_for_box(path, box, out_scale: float = 1.4) -> tuple[np.ndarray, np.ndarray]:
    """Read ``path`` at the coarsest resolution the crop around ``box`` allows.

    Returns the image and the box in that image's coordinates (box / factor).
    """
    f = decode_factor(box, out_scale)
    img = cv2.imread(str(path), _REDUCED[f])
    if img is None:
        raise OSError(f"cannot read image {path}")
    b = np.asarray(box, dtype=np.float64)
    if f > 1:  # pixel j of the reduced image covers [j·f, (j+1)·f): edges scale exactly
        b = b / f
    return img, b
