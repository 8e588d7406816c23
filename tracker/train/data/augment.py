"""Pair-level augmentation: crop jitter, appearance changes, cutout occlusion.

Measured here: easy pairs (COCO pairs cut from one image) saturate in minutes; gains come from
occlusion, distractors, negatives, strong scale/aspect/rotation jitter and
motion blur. Geometry goes into the crop warp (one interpolation); everything
else runs on the 127/255 crops, which is cheap.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from .photometric import gaussian_blur, gaussian_noise, grayscale, hue_shift, motion_blur, saturation, tone


@dataclass
class AugConfig:
    # exemplar: the tracker centres it on the given box, so only a slight scale wobble
    z_scale: float = 0.05  # log-uniform ±
    # search crop
    x_scale: float = 0.3  # log-uniform ±: 0.74..1.35 size change
    x_aspect: float = 0.2  # log-uniform ± aspect change
    x_shift: float = 64.0  # px; half uniform in ±x_shift, half normal(0, x_shift/4) (real motion is mostly small)
    x_rotate: float = 10.0  # degrees ±, applied with p_rotate
    p_rotate: float = 0.3
    p_flip: float = 0.5  # mirror z and x together (label mirrored too)
    # appearance
    p_color: float = 0.8  # tone/saturation jitter, independent on z and x
    p_hue: float = 0.1
    p_gray: float = 0.1  # both crops
    p_motion_blur: float = 0.2  # x only
    p_blur: float = 0.1  # either crop
    p_noise: float = 0.1
    p_cutout: float = 0.25  # x only: a patch occludes part of the target
    cutout_area: tuple = (0.15, 0.5)  # fraction of the target box covered
    neg_rate: float = 0.1  # pairs whose search crop shows another object

    @classmethod
    def from_dict(cls, d: dict | None) -> "AugConfig":
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        bad = set(d) - known
        if bad:
            raise ValueError(f"unknown augmentation options {sorted(bad)}; known: {sorted(known)}")
        if "cutout_area" in d:
            d["cutout_area"] = tuple(d["cutout_area"])
        return cls(**d)


def search_jitter(rng: np.random.Generator, cfg: AugConfig) -> dict:
    """Keyword arguments for crops.crop_matrix on the search image."""
    if rng.random() < 0.5:
        shift = rng.uniform(-cfg.x_shift, cfg.x_shift, 2)
    else:
        shift = np.clip(rng.normal(0, cfg.x_shift / 4, 2), -cfg.x_shift, cfg.x_shift)
    return dict(scale=math.exp(rng.uniform(-cfg.x_scale, cfg.x_scale)),
                aspect=math.exp(rng.uniform(-cfg.x_aspect, cfg.x_aspect)),
                angle=rng.uniform(-cfg.x_rotate, cfg.x_rotate) if rng.random() < cfg.p_rotate else 0.0,
                shift=(float(shift[0]), float(shift[1])))


def exemplar_jitter(rng: np.random.Generator, cfg: AugConfig) -> dict:
    return dict(scale=math.exp(rng.uniform(-cfg.z_scale, cfg.z_scale)))


def appearance(img: np.ndarray, rng: np.random.Generator, cfg: AugConfig) -> np.ndarray:
    if rng.random() < cfg.p_color:
        img = tone(img, rng, 0.15, 0.25, 0.2, 0.06)
        if rng.random() < 0.3:
            img = saturation(img, math.exp(rng.uniform(-0.4, 0.3)))
    if rng.random() < cfg.p_hue:
        img = hue_shift(img, rng.uniform(-12, 12))
    if rng.random() < cfg.p_blur:
        img = gaussian_blur(img, rng.uniform(0.5, 1.5))
    if rng.random() < cfg.p_noise:
        img = gaussian_noise(img, rng, rng.uniform(2, 8))
    return img


def cutout(img: np.ndarray, box, rng: np.random.Generator, area=(0.15, 0.5)) -> np.ndarray:
    """Cover a random part of ``box`` with a patch taken from elsewhere in the image
    (background clutter, realistic) or a flat random colour."""
    H, W = img.shape[:2]
    x, y, w, h = (float(v) for v in box)
    frac = rng.uniform(*area)
    r = math.exp(rng.uniform(-0.7, 0.7))  # patch aspect
    pw = int(np.clip(math.sqrt(frac * w * h * r), 4, W // 2))
    ph = int(np.clip(math.sqrt(frac * w * h / r), 4, H // 2))
    # patch centre inside the box, so it always overlaps the target
    px = int(np.clip(rng.uniform(x, x + w) - pw / 2, 0, W - pw))
    py = int(np.clip(rng.uniform(y, y + h) - ph / 2, 0, H - ph))
    out = img.copy()
    if rng.random() < 0.6:
        sx, sy = int(rng.integers(0, W - pw + 1)), int(rng.integers(0, H - ph + 1))
        out[py:py + ph, px:px + pw] = img[sy:sy + ph, sx:sx + pw]
    else:
        out[py:py + ph, px:px + pw] = rng.integers(0, 256, 3, dtype=np.uint8)
    return out


def augment_pair(z: np.ndarray, x: np.ndarray, box_x, neg: bool, rng: np.random.Generator,
                 cfg: AugConfig) -> tuple[np.ndarray, np.ndarray]:
    """Appearance changes on the crops (geometry is already in the warp)."""
    z = appearance(z, rng, cfg)
    x = appearance(x, rng, cfg)
    if rng.random() < cfg.p_motion_blur:
        x = motion_blur(x, rng.uniform(4, 14), rng.uniform(0, 180))
    if rng.random() < cfg.p_gray:
        z, x = grayscale(z), grayscale(x)
    if rng.random() < cfg.p_cutout:
        b = box_x if not neg else np.array([96.0, 96.0, 64.0, 64.0])
        x = cutout(x, b, rng, cfg.cutout_area)
    return z, x
