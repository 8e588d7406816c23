"""Shared by the tracker and CLI tests: a tiny registered backbone, synthetic sequences,
synthetic training pairs and a few-second trainer. (Its own tests check the generator.)
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn as nn

from backbones import Backbone, ConvUnit, Spec, list_backbones, register
from tracker import crops
from tracker.train.losses import balanced_logistic_loss, siamfc_labels
from tracker.model import SiamNet

TINY = "tiny-test"


class TinyNet(Backbone):
    """3 units, stride 8, no padding: 127 -> 14x14 features, 255 -> 30x30, a 17x17 response like SiamFC.

    A 4x4/4 patchify first layer keeps it cheap enough to train in seconds.
    """

    stride = 8

    def __init__(self, **kw):
        super().__init__()
        self.c1 = ConvUnit(3, 16, 4, stride=4, **kw)
        self.c2 = ConvUnit(16, 32, 3, stride=2, padding=1, **kw)
        self.c3 = ConvUnit(32, 32, 3, **kw)
        self.act = nn.ReLU()
        self.out_channels = 32

    def forward(self, x):
        return self.c3(self.act(self.c2(self.act(self.c1(x)))))


if TINY not in list_backbones():
    register(TINY, "tiny 4-unit test backbone")(lambda **kw: TinyNet(**kw))


# -- synthetic imagery --------------------------------------------------------

def texture(rng, h: int, w: int, cell: int) -> np.ndarray:
    """Smooth random colour texture with features about ``cell`` px large."""
    small = rng.uniform(0, 255, (h // cell + 3, w // cell + 3, 3)).astype(np.float32)
    big = cv2.resize(small, ((w // cell + 3) * cell, (h // cell + 3) * cell), interpolation=cv2.INTER_CUBIC)
    return np.clip(big[:h, :w], 0, 255).astype(np.uint8)


def make_patch(rng, h: int, w: int) -> np.ndarray:
    """A target: fine texture with a random bold pattern, unlike the smooth background."""
    p = texture(rng, h, w, 6).astype(np.int16)
    k = rng.integers(0, 3)
    yy, xx = np.mgrid[:h, :w]
    stripes = ((xx + yy * (k - 1)) // max(3, w // 6)) % 2 if k else ((xx // max(3, w // 5) + yy // max(3, h // 5)) % 2)
    col = rng.integers(0, 256, 3)
    p[stripes.astype(bool)] = (p[stripes.astype(bool)] // 2 + col // 2)
    return np.clip(p, 0, 255).astype(np.uint8)


def synthetic_sequence(seed: int, n: int = 60, size=(320, 240), target=(44, 36)):
    """A textured patch moving smoothly (and scaling a little) over a textured background.

    Returns (frames BGR list, ground-truth boxes (n,4) x,y,w,h).
    """
    rng = np.random.default_rng(seed)
    W, H = size
    bg = ((texture(rng, H, W, 40).astype(np.int16) + texture(rng, H, W, 12)) // 2).astype(np.uint8)
    tw, th = target
    patch = make_patch(rng, th, tw)
    ph = rng.uniform(0, 2 * math.pi, 3)
    frames, boxes = [], []
    for t in range(n):
        a = 2 * math.pi * t / n
        s = 1.0 + 0.12 * math.sin(a + ph[2])
        w, h = tw * s, th * s
        cx = W / 2 + 0.28 * W * math.sin(a + ph[0])
        cy = H / 2 + 0.25 * H * math.sin(2 * a + ph[1])
        x0, y0 = cx - w / 2, cy - h / 2
        img = bg.copy()
        pw, phh = int(round(w)), int(round(h))
        xi, yi = int(round(x0)), int(round(y0))
        img[yi:yi + phh, xi:xi + pw] = cv2.resize(patch, (pw, phh), interpolation=cv2.INTER_LINEAR)
        frames.append(img)
        boxes.append((xi, yi, pw, phh))
    return frames, np.array(boxes, dtype=np.float64)


def iou(a, b) -> np.ndarray:
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    x1 = np.maximum(a[:, 0], b[:, 0])
    y1 = np.maximum(a[:, 1], b[:, 1])
    x2 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    y2 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    return inter / (a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter)


# -- a tiny model trained in seconds --------------------------------------------

def synthetic_pairs(rng, n: int):
    """SiamFC pairs cut from synthetic frames: (z, x, target offsets (dy, dx), neg) tensors.

    Half of the search crops also hold a distractor patch, so the network must
    learn the target's identity, not just "a patch".
    """
    zs, xs, offs = [], [], []
    for _ in range(n):
        W, H = 400, 400
        bg = ((texture(rng, H, W, int(rng.integers(10, 50))).astype(np.int16) + texture(rng, H, W, 12)) // 2).astype(np.uint8)
        tw, th = (int(v) for v in rng.integers(24, 64, 2))
        patch = make_patch(rng, th, tw)
        frame_z, frame_x = bg.copy(), bg.copy()
        c = np.array([W / 2, H / 2])
        zx0, zy0 = int(c[0] - tw / 2), int(c[1] - th / 2)
        frame_z[zy0:zy0 + th, zx0:zx0 + tw] = patch
        ext_z = crops.context_size(tw, th)
        ext_x = ext_z * 255 / 127
        k = ext_x / 255  # image px per search px
        off = rng.uniform(-56, 56, 2)  # target offset in search px (dy, dx)
        tc = c + off[::-1] * k
        x0, y0 = int(round(tc[0] - tw / 2)), int(round(tc[1] - th / 2))
        frame_x[y0:y0 + th, x0:x0 + tw] = patch
        if rng.random() < 0.5:  # distractor elsewhere in the search region
            d = make_patch(rng, th, tw)
            dc = c + rng.uniform(-80, 80, 2) * k
            dx0, dy0 = int(np.clip(dc[0] - tw / 2, 0, W - tw)), int(np.clip(dc[1] - th / 2, 0, H - th))
            if abs(dx0 - x0) > tw or abs(dy0 - y0) > th:
                frame_x[dy0:dy0 + th, dx0:dx0 + tw] = d
        zs.append(crops.square_crop(frame_z, (zx0 + (tw - 1) / 2, zy0 + (th - 1) / 2), ext_z, 127))
        xs.append(crops.square_crop(frame_x, c, ext_x, 255))
        offs.append(((y0 + (th - 1) / 2 - c[1]) / k, (x0 + (tw - 1) / 2 - c[0]) / k))
    z = crops.to_tensor_batch(np.stack(zs))  # BGR, like the frames the tracker sees
    x = crops.to_tensor_batch(np.stack(xs))
    return z, x, torch.tensor(offs, dtype=torch.float32), torch.zeros(n, dtype=torch.bool)


def train_tiny(steps: int = 150, batch: int = 8, seed: int = 0) -> SiamNet:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = SiamNet(TINY)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    net.train()
    for step in range(steps):
        z, x, off, neg = synthetic_pairs(rng, batch)
        resp = net(z, x)
        loss = balanced_logistic_loss(resp, siamfc_labels(off, neg, resp.shape[-1], net.stride))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def tiny_spec() -> Spec:
    return Spec.uniform(TINY, "fp")


def write_video(path, frames, fps: float = 25.0, size=None) -> None:
    w, h = size if size is not None else frames[0].shape[1::-1]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for f in frames:
        vw.write(f)
    vw.release()


# -- the kit's own checks --------------------------------------------------------

def test_synthetic_sequence_is_deterministic_and_inside():
    f1, b1 = synthetic_sequence(3, n=10)
    f2, b2 = synthetic_sequence(3, n=10)
    assert np.array_equal(b1, b2) and all(np.array_equal(a, b) for a, b in zip(f1, f2))
    h, w = f1[0].shape[:2]
    assert (b1[:, 0] >= 0).all() and (b1[:, 1] >= 0).all()
    assert (b1[:, 0] + b1[:, 2] <= w).all() and (b1[:, 1] + b1[:, 3] <= h).all()


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10))[0] == 1.0
    assert abs(iou((0, 0, 10, 10), (5, 0, 10, 10))[0] - 1 / 3) < 1e-9


class FakeCapture:
    """Stands in for cv2.VideoCapture: serves given frames; can be closed or interrupt."""

    def __init__(self, frames, opened: bool = True, interrupt_at: int | None = None, fps: float = 30.0):
        self.frames, self.opened, self.interrupt_at, self.fps = list(frames), opened, interrupt_at, fps
        self.i = 0
        self.released = False

    def isOpened(self):
        return self.opened

    def read(self):
        if self.interrupt_at is not None and self.i == self.interrupt_at:
            raise KeyboardInterrupt
        if not self.opened or self.i >= len(self.frames):
            return False, None
        self.i += 1
        return True, self.frames[self.i - 1].copy()

    def get(self, prop):
        return {cv2.CAP_PROP_FPS: self.fps, cv2.CAP_PROP_FRAME_COUNT: 0}.get(prop, 0)

    def release(self):
        self.released = True


def empty_capture(index):
    """A capture factory (for B2TRACK_CAPTURE_FACTORY) whose device opens but never delivers a frame."""
    return FakeCapture([])
