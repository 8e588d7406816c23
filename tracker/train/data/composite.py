"""Synthetic pairs: photo cut-outs (RGBA) moving over real background photos.

A scene = background + target + 0-3 distractors of the same kind (the same
stamp recoloured/rescaled, or a stamp of the same category), rendered twice:
z, and x after camera motion, object motion (shift, scale, rotation, flip,
motion blur along the motion) and, sometimes, an occluding cut-out on top of
the target. The target box is the tight box of its own alpha (occluder not
subtracted), so it is the full extent of the object, as annotators draw it.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .base import Pair, PairSource, split_names
from .paths import DEFAULT_CACHE, check_training_path
from .photometric import hue_shift, motion_kernel, tone


@dataclass
class Stamp:
    name: str
    category: str
    path: Path


def load_index(cache: Path | str = DEFAULT_CACHE) -> dict:
    f = Path(cache) / "index.json"
    if not f.is_file():
        raise FileNotFoundError(f"{f} not found: run `python tools/prepare_data.py --cache {cache}` first")
    return json.loads(f.read_text())


def _similar_groups(stamps: list[Stamp]) -> list[np.ndarray]:
    """For each stamp, the other stamps of its category, else of its parent category, else its top level."""
    out = []
    for i, s in enumerate(stamps):
        parts = s.category.split("/")
        group: list[int] = []
        for depth in range(len(parts), 0, -1):
            pre = "/".join(parts[:depth])
            group = [j for j, t in enumerate(stamps) if j != i and (t.category == pre or t.category.startswith(pre + "/"))]
            if group:
                break
        out.append(np.asarray(group, dtype=np.int64))
    return out


def paste(canvas: np.ndarray, rgba: np.ndarray, m: np.ndarray, blur: np.ndarray | None = None):
    """Alpha-composite ``rgba`` (premultiplied colour + alpha, uint8) through affine ``m`` in place.

    Returns (alpha patch uint8, (x0, y0)) for the covered region, or None when
    it falls outside the canvas. Works on the covered ROI only.
    """
    s = math.sqrt(abs(np.linalg.det(m[:, :2])))
    if s < 0.6:  # shrink with area averaging first: a strong downscale in warpAffine aliases
        small = cv2.resize(rgba, (max(1, round(rgba.shape[1] * s)), max(1, round(rgba.shape[0] * s))),
                           interpolation=cv2.INTER_AREA)
        fx, fy = small.shape[1] / rgba.shape[1], small.shape[0] / rgba.shape[0]
        # resize maps pixel centres u' = (u + 0.5)·f - 0.5
        m = np.hstack([m[:, :1] / fx, m[:, 1:2] / fy,
                       (m[:, 2] + m[:, 0] * (0.5 / fx - 0.5) + m[:, 1] * (0.5 / fy - 0.5))[:, None]])
        rgba = small
    h, w = rgba.shape[:2]
    pts = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], np.float64) @ m.T
    pad = 0 if blur is None else blur.shape[0]
    H, W = canvas.shape[:2]
    x0, y0 = max(0, int(math.floor(pts[:, 0].min())) - pad), max(0, int(math.floor(pts[:, 1].min())) - pad)
    x1, y1 = min(W, int(math.ceil(pts[:, 0].max())) + pad + 1), min(H, int(math.ceil(pts[:, 1].max())) + pad + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    mr = m.copy()
    mr[:, 2] -= (x0, y0)
    patch = cv2.warpAffine(rgba, mr, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    if blur is not None:
        patch = cv2.filter2D(patch, -1, blur, borderType=cv2.BORDER_CONSTANT)
    a = patch[..., 3:4].astype(np.float32) * (1.0 / 255)
    roi = canvas[y0:y1, x0:x1]
    roi[:] = np.clip(patch[..., :3].astype(np.float32) + roi.astype(np.float32) * (1.0 - a), 0, 255).astype(np.uint8)
    return patch[..., 3], (x0, y0)


def _place(alpha_patch, origin, shape) -> np.ndarray:
    full = np.zeros(shape[:2], np.uint8)
    if alpha_patch is not None:
        x0, y0 = origin
        full[y0:y0 + alpha_patch.shape[0], x0:x0 + alpha_patch.shape[1]] = alpha_patch
    return full


def _similarity(cx: float, cy: float, size: float, angle: float, flip: bool, stamp_wh, aspect: float = 1.0) -> np.ndarray:
    """Affine placing a stamp of size stamp_wh with its longest side ``size`` px, centred at (cx, cy)."""
    sw, sh = stamp_wh
    s = size / max(sw, sh)
    sa = math.sqrt(aspect)
    c, sn = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    a = np.array([[c, sn], [-sn, c]]) @ np.diag([s * sa * (-1 if flip else 1), s / sa])
    centre = np.array([(sw - 1) / 2, (sh - 1) / 2])
    return np.hstack([a, (np.array([cx, cy]) - a @ centre)[:, None]])


class CompositeSource(PairSource):
    kind = "composite"

    def __init__(self, stamps: list[Stamp], backgrounds: list[Path], max_canvas: int = 768,
                 p_distractor: float = 0.85, p_occluder: float = 0.3, p_motion_blur: float = 0.3,
                 max_cached: int = 512):
        if not stamps or not backgrounds:
            raise ValueError("CompositeSource needs stamps and backgrounds (run tools/prepare_data.py)")
        for p in [s.path for s in stamps] + list(backgrounds):
            check_training_path(p)
        self.stamps = stamps
        self.backgrounds = [Path(b) for b in backgrounds]
        self.max_canvas = max_canvas
        self.p_distractor, self.p_occluder, self.p_motion_blur = p_distractor, p_occluder, p_motion_blur
        self._similar = _similar_groups(stamps)
        self._cache: dict = {}  # per worker process; images are small (<=1024 / <=320 px)
        self.max_cached = max_cached

    @classmethod
    def from_index(cls, cache: Path | str = DEFAULT_CACHE, split: str = "train", holdout=0.1, **kw) -> "CompositeSource":
        cache = Path(cache)
        ix = load_index(cache)
        stamps = [Stamp(s["name"], s["category"], cache / s["path"]) for s in ix["stamps"]]
        # a fraction becomes an exact count here: with ~100 stamps, hashing alone holds out 5..20
        n_s = holdout if not isinstance(holdout, float) else max(1, round(holdout * len(stamps)))
        keep = set(split_names([s.path.stem + "@" + s.category for s in stamps], n_s, split, salt="stamps"))
        stamps = [s for s in stamps if s.path.stem + "@" + s.category in keep]
        bgs = [cache / b["path"] for b in ix["backgrounds"]]
        n_b = holdout if not isinstance(holdout, float) else max(1, round(holdout * len(bgs)))
        keep = set(split_names([b.name for b in bgs], n_b, split, salt="backgrounds"))
        return cls(stamps, [b for b in bgs if b.name in keep], **kw)

    def __len__(self) -> int:
        return len(self.stamps) * len(self.backgrounds)

    # -- assets ---------------------------------------------------------------
    def _load(self, path: Path, flags: int) -> np.ndarray:
        img = self._cache.get(path)
        if img is None:
            img = cv2.imread(str(path), flags)
            if img is None:
                raise OSError(f"cannot read {path}")
            if len(self._cache) < self.max_cached:
                self._cache[path] = img
        return img

    def _stamp(self, i: int) -> np.ndarray:
        return self._load(self.stamps[i].path, cv2.IMREAD_UNCHANGED)  # straight (not premultiplied) BGRA

    def _premultiplied(self, i: int) -> np.ndarray:
        key = ("pm", i)
        pm = self._cache.get(key)
        if pm is None:
            pm = self._premultiply(self._stamp(i))
            self._cache[key] = pm
        return pm

    @staticmethod
    def _premultiply(rgba: np.ndarray, rng: np.random.Generator | None = None, recolour: bool = False) -> np.ndarray:
        rgb, a = rgba[..., :3], rgba[..., 3:]
        if recolour and rng is not None:  # "another instance": same shape, other colour/tone
            rgb = hue_shift(rgb, rng.uniform(20, 60) * rng.choice([-1, 1])) if rng.random() < 0.6 else rgb
            rgb = tone(rgb, rng, 0.15, 0.2, 0.2, 0.1)
        pm = (rgb.astype(np.float32) * (a.astype(np.float32) * (1.0 / 255))).astype(np.uint8)
        return np.concatenate([pm, a], axis=2)

    # -- scene ------------------------------------------------------------------
    def _background(self, rng: np.random.Generator, W: int, H: int):
        bg = self._load(self.backgrounds[int(rng.integers(len(self.backgrounds)))], cv2.IMREAD_COLOR)
        bh, bw = bg.shape[:2]
        s = max(W / bw, H / bh) * math.exp(rng.uniform(0.0, 0.6))
        ox = rng.uniform(0, max(0.0, bw * s - W))
        oy = rng.uniform(0, max(0.0, bh * s - H))
        flip = rng.random() < 0.5
        a = np.array([[-s if flip else s, 0.0], [0.0, s]])
        tx = (bw * s - ox) if flip else -ox
        m_z = np.array([[a[0, 0], 0.0, tx], [0.0, s, -oy]])
        # camera motion between z and x: a small similarity about the canvas centre
        ang = math.radians(rng.uniform(-3, 3))
        cs = math.exp(rng.uniform(-0.1, 0.1))
        c = np.array([[cs * math.cos(ang), cs * math.sin(ang)], [-cs * math.sin(ang), cs * math.cos(ang)]])
        ctr = np.array([W / 2, H / 2])
        t = ctr + rng.normal(0, 12, 2) - c @ ctr
        cam = np.hstack([c, t[:, None]])
        m_x = np.vstack([cam, [0, 0, 1]]) @ np.vstack([m_z, [0, 0, 1]])
        kw = dict(flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        return (cv2.warpAffine(bg, m_z, (W, H), **kw), cv2.warpAffine(bg, m_x[:2], (W, H), **kw), cam)

    def render(self, rng: np.random.Generator) -> Pair:
        # Longest side in canvas px. The search crop spans about 4x the target, so targets
        # stay small and near the middle of the canvas: the crop then never reaches the
        # canvas edge (a padded edge around every composite target would be a give-away).
        # The canvas is only as large as the crops need (warping it is the main cost).
        size_z = math.exp(rng.uniform(math.log(36), math.log(100)))
        W = H = int(min(self.max_canvas, 8 * size_z))
        can_z, can_x, cam = self._background(rng, W, H)
        ti = int(rng.integers(len(self.stamps)))
        t_rgba = self._stamp(ti)
        wh = (t_rgba.shape[1], t_rgba.shape[0])
        cz = np.array([W / 2, H / 2]) + rng.uniform(-0.08, 0.08, 2) * np.array([W, H])
        ang_z = rng.uniform(-10, 10)
        flip_z = bool(rng.random() < 0.5)
        # object motion
        size_x = size_z * math.exp(rng.uniform(-0.3, 0.3))
        move = rng.normal(0, 0.5 * size_z, 2)
        cx = cam[:, :2] @ cz + cam[:, 2] + move
        cx = np.clip(cx, [size_x / 3, size_x / 3], [W - size_x / 3, H - size_x / 3])
        ang_x = ang_z + rng.uniform(-20, 20)
        flip_x = flip_z ^ bool(rng.random() < 0.15)
        aspect_x = math.exp(rng.uniform(-0.12, 0.12))
        blur = None
        if rng.random() < self.p_motion_blur:
            d = np.hypot(*move)
            length = float(np.clip(d * rng.uniform(0.3, 1.0), 4, 25))
            blur = motion_kernel(length, math.degrees(math.atan2(move[1], move[0])))

        # distractors: persistent scene objects, behind the target in both frames
        n_d = int(rng.integers(1, 4)) if rng.random() < self.p_distractor else 0
        for _ in range(n_d):
            same = rng.random() < 0.5 or len(self._similar[ti]) == 0
            di = ti if same else int(self._similar[ti][rng.integers(len(self._similar[ti]))])
            d_rgba = self._premultiply(self._stamp(di), rng, recolour=True) if same else self._premultiplied(di)
            dwh = (d_rgba.shape[1], d_rgba.shape[0])
            d_size = size_z * math.exp(rng.uniform(-0.35, 0.35))
            r, th = rng.uniform(0.9, 2.5) * size_z, rng.uniform(0, 2 * math.pi)
            pz = cz + r * np.array([math.cos(th), math.sin(th)])
            px = cam[:, :2] @ pz + cam[:, 2] + rng.normal(0, 0.4 * size_z, 2)
            d_ang, d_flip = rng.uniform(-15, 15), bool(rng.random() < 0.5)
            paste(can_z, d_rgba, _similarity(*pz, d_size, d_ang, d_flip, dwh))
            paste(can_x, d_rgba, _similarity(*px, d_size * size_x / size_z, d_ang + rng.uniform(-15, 15), d_flip, dwh))

        t_pm = self._premultiplied(ti)
        az = paste(can_z, t_pm, _similarity(*cz, size_z, ang_z, flip_z, wh))
        ax = paste(can_x, t_pm, _similarity(*cx, size_x, ang_x, flip_x, wh, aspect_x), blur)
        mask_z, mask_x = _place(*(az or (None, None)), can_z.shape), _place(*(ax or (None, None)), can_x.shape)
        box_z, box_x = _mask_box(mask_z), _mask_box(mask_x)
        if box_z is None or box_x is None:
            raise ValueError("composite target fell outside the canvas")

        visible_x = mask_x
        if rng.random() < self.p_occluder:
            others = np.flatnonzero([s.category.split("/")[0] != self.stamps[ti].category.split("/")[0]
                                     for s in self.stamps])
            oi = int(others[rng.integers(len(others))]) if len(others) else ti
            o_rgba = self._premultiplied(oi)
            o_size = size_x * rng.uniform(0.5, 1.0)
            th = rng.uniform(0, 2 * math.pi)
            po = cx + rng.uniform(0.35, 0.8) * size_x * np.array([math.cos(th), math.sin(th)])
            ao = paste(can_x, o_rgba, _similarity(*po, o_size, rng.uniform(-30, 30), bool(rng.random() < 0.5),
                                                 (o_rgba.shape[1], o_rgba.shape[0])))
            if ao is not None:
                occ = _place(*ao, can_x.shape).astype(np.float32) / 255
                visible_x = (mask_x.astype(np.float32) * (1 - occ)).astype(np.uint8)
        return Pair(can_z, box_z, can_x, box_x, key=f"stamp:{self.stamps[ti].name}", kind=self.kind,
                    extra={"mask_z": mask_z, "mask_x": mask_x, "visible_x": visible_x})

    def sample_pair(self, rng: np.random.Generator) -> Pair:
        return self.render(rng)


def _mask_box(mask: np.ndarray, thr: int = 128) -> np.ndarray | None:
    """Tight x,y,w,h of mask >= thr (edge convention: pixel i covers [i, i+1))."""
    m = (mask >= thr).astype(np.uint8)
    x, y, w, h = cv2.boundingRect(m)
    if w == 0 or h == 0:
        return None
    return np.array([x, y, w, h], dtype=np.float64)
