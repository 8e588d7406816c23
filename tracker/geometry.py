"""Box and crop geometry shared by training and inference: one definition, so they cannot drift.

Boxes are x,y,w,h with (x, y) the top-left *edge*, so a box covers the
continuous interval [x, x+w). OpenCV puts pixel centres at integers, hence the
target centre in pixel-centre coordinates is (x + (w-1)/2, y + (h-1)/2) (the
OTB/LaSOT toolkits' centre), and it maps to a crop's centre ((size-1)/2).
"""
from __future__ import annotations

import math

import numpy as np

EXEMPLAR_SIZE = 127  # SiamFC's exemplar crop, pixels
SEARCH_SIZE = 255  # SiamFC's search crop, pixels; it covers SEARCH_SIZE / EXEMPLAR_SIZE exemplar extents
CONTEXT = 0.5  # context margin around the target, as a share of w + h


def box_to_cs(box) -> tuple[np.ndarray, np.ndarray]:
    """x,y,w,h -> centre (cx, cy) and size (w, h), float64."""
    x, y, w, h = (float(v) for v in box)
    return np.array([x + (w - 1) / 2, y + (h - 1) / 2]), np.array([w, h])


def cs_to_box(center, size) -> np.ndarray:
    return np.array([center[0] - (size[0] - 1) / 2, center[1] - (size[1] - 1) / 2, size[0], size[1]])


def context_size(w: float, h: float, context: float = CONTEXT) -> float:
    """SiamFC's exemplar extent in image pixels: sqrt((w+p)(h+p)), p = context·(w+h)."""
    p = context * (w + h)
    return math.sqrt((w + p) * (h + p))
