"""Photometric and blur operations on uint8 BGR images (all OpenCV, no per-pixel Python)."""
from __future__ import annotations

import math

import cv2
import numpy as np

_RAMP = np.arange(256, dtype=np.float32) / 255.0


def tone(img: np.ndarray, rng: np.random.Generator, brightness: float = 0.2, contrast: float = 0.25,
         gamma: float = 0.25, gain: float = 0.08) -> np.ndarray:
    """Brightness, contrast, gamma and per-channel gain (white balance) fused into one LUT."""
    b = rng.uniform(-brightness, brightness) * 255
    c = math.exp(rng.uniform(-contrast, contrast))
    g = math.exp(rng.uniform(-gamma, gamma))
    gains = np.exp(rng.uniform(-gain, gain, 3))
    lut = np.empty((256, 1, 3), np.float32)
    for ch in range(3):
        v = (_RAMP ** g) * 255.0 * gains[ch]
        lut[:, 0, ch] = (v - 128.0) * c + 128.0 + b
    lut = np.clip(lut + 0.5, 0, 255).astype(np.uint8)
    return cv2.LUT(img, lut)


def saturation(img: np.ndarray, factor: float) -> np.ndarray:
    gray = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    return cv2.addWeighted(img, factor, gray, 1.0 - factor, 0.0)


def hue_shift(img: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate hue by ``degrees`` (OpenCV's 8-bit H runs 0..179, 2° a step)."""
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    h = hsv[..., 0].astype(np.int16) + int(round(degrees / 2))
    hsv[..., 0] = np.mod(h, 180).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def grayscale(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), sigma)


def motion_kernel(length: float, angle: float) -> np.ndarray:
    """Normalised line kernel of ``length`` px at ``angle`` degrees."""
    k = max(3, int(math.ceil(length)) | 1)
    ker = np.zeros((k, k), np.float32)
    c = (k - 1) / 2
    dx, dy = math.cos(math.radians(angle)) * length / 2, math.sin(math.radians(angle)) * length / 2
    # anti-aliased line (shift=4 gives 1/16 px precision)
    p0 = (int(round((c - dx) * 16)), int(round((c - dy) * 16)))
    p1 = (int(round((c + dx) * 16)), int(round((c + dy) * 16)))
    cv2.line(ker, p0, p1, 1.0, 1, cv2.LINE_AA, shift=4)
    s = ker.sum()
    if s <= 0:
        ker[int(c), int(c)] = 1.0
        s = 1.0
    return ker / s


def motion_blur(img: np.ndarray, length: float, angle: float) -> np.ndarray:
    if length < 1.5:
        return img
    return cv2.filter2D(img, -1, motion_kernel(length, angle), borderType=cv2.BORDER_REFLECT)


def illumination(img: np.ndarray, rng: np.random.Generator, strength: float = 0.35) -> np.ndarray:
    """Smooth random light field (gradient / spot), gain in [1-strength, 1+strength]."""
    h, w = img.shape[:2]
    g = rng.uniform(1 - strength, 1 + strength, (3, 3)).astype(np.float32)
    field = cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC)
    out = img.astype(np.float32) * field[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


def gaussian_noise(img: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    n = rng.standard_normal(img.shape, dtype=np.float32) * sigma
    return np.clip(img.astype(np.float32) + n, 0, 255).astype(np.uint8)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else img


def random_photometric(img: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """The still-image appearance change: tone, colour, light field, blur, noise."""
    out = tone(img, rng, 0.2 * strength, 0.3 * strength, 0.3 * strength, 0.1 * strength)
    if rng.random() < 0.5:
        out = saturation(out, math.exp(rng.uniform(-0.5, 0.4) * strength))
    if rng.random() < 0.25:
        out = hue_shift(out, rng.uniform(-15, 15) * strength)
    if rng.random() < 0.4:
        out = illumination(out, rng, 0.4 * strength)
    r = rng.random()
    if r < 0.2:
        out = gaussian_blur(out, rng.uniform(0.5, 2.0))
    elif r < 0.35:
        out = motion_blur(out, rng.uniform(3, 12), rng.uniform(0, 180))
    return out
