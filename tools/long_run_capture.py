"""Frame sources for tools/long_run.py, loaded inside `track` through B2TRACK_CAPTURE_FACTORY.

    B2TRACK_CAPTURE_FACTORY=long_run_capture:looped_clip    # a real clip, decoded again from frame 1 at its end
    B2TRACK_CAPTURE_FACTORY=long_run_capture:fake_webcam    # a synthetic 640x480 camera

Both stand in for ``cv2.VideoCapture`` and end after B2TRACK_LONG_RUN_READS
frames. Each ``read()`` call, the one after the last frame included, appends
``read-number wall-seconds cpu-seconds rss-kB`` to B2TRACK_LONG_RUN_LOG as it
starts: the gap between two reads is one whole frame of `track`'s loop
(tracking, writing the box and the video, decoding the next frame), and the
RSS is the `track` process's own, sampled at a known frame.
"""
from __future__ import annotations

import math
import os
import time

import cv2
import numpy as np

WEBCAM_SIZE = (640, 480)  # width, height, a common webcam mode
WEBCAM_TARGET = (80, 60)  # width, height of the moving target
WEBCAM_PERIOD = 400  # frames per lap of the target's path


def rss_kb() -> int:
    """Resident memory of this process (VmRSS, kB), from /proc/self/status."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class _Logged:
    """Serves ``limit`` frames from ``_next()``, logging every read() call; cv2.VideoCapture's interface."""

    def __init__(self):
        self.limit = int(os.environ["B2TRACK_LONG_RUN_READS"])
        self.log = open(os.environ["B2TRACK_LONG_RUN_LOG"], "w")
        self.reads = 0

    def isOpened(self) -> bool:
        return True

    def read(self):
        self.reads += 1
        # written and flushed per frame so a crashed run still shows where memory and time went
        self.log.write(f"{self.reads} {time.perf_counter():.6f} {time.process_time():.6f} {rss_kb()}\n")
        self.log.flush()
        if self.reads > self.limit:
            return False, None
        return True, self._next()

    def get(self, prop):
        if prop == cv2.CAP_PROP_FPS:
            return 25.0
        return 0  # frame count unknown, as for a stream

    def release(self) -> None:
        self.log.close()


class LoopedClip(_Logged):
    """A video file played over and over: at its end it is released and opened again from frame 1."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.cap = cv2.VideoCapture(path)

    def isOpened(self) -> bool:
        return self.cap.isOpened()

    def _next(self):
        ok, frame = self.cap.read()
        if not ok:
            self.cap.release()
            self.cap = cv2.VideoCapture(self.path)
            ok, frame = self.cap.read()
        return frame if ok else None

    def get(self, prop):
        return self.cap.get(prop) if prop == cv2.CAP_PROP_FPS else 0

    def release(self) -> None:
        self.cap.release()
        super().release()


def webcam_box(t: int) -> tuple[int, int, int, int]:
    """The fake webcam's target box (x, y, w, h) in its frame ``t`` (0-based): a Lissajous lap."""
    (W, H), (w, h) = WEBCAM_SIZE, WEBCAM_TARGET
    a = 2 * math.pi * t / WEBCAM_PERIOD
    cx = W / 2 + 0.35 * W * math.sin(a)
    cy = H / 2 + 0.30 * H * math.sin(2 * a + 0.5)
    return int(round(cx - w / 2)), int(round(cy - h / 2)), w, h


class FakeWebcam(_Logged):
    """A fixed textured room with a striped target moving over it, plus fresh-looking sensor noise."""

    def __init__(self, index: int):
        super().__init__()
        rng = np.random.default_rng(index)
        W, H = WEBCAM_SIZE
        coarse = rng.uniform(0, 255, (H // 40 + 1, W // 40 + 1, 3)).astype(np.float32)
        self.background = cv2.resize(coarse, (W, H), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)
        w, h = WEBCAM_TARGET
        yy, xx = np.mgrid[:h, :w]
        stripes = ((xx + yy) // 10) % 2
        self.target = np.where(stripes[..., None] > 0, (30, 60, 220), (240, 240, 240)).astype(np.uint8)
        # a few noise frames cycled: generating noise per frame would cost more than a real camera does
        self.noise = [rng.integers(0, 12, (H, W, 3), dtype=np.uint8) for _ in range(8)]

    def _next(self):
        t = self.reads - 1
        x, y, w, h = webcam_box(t)
        frame = cv2.add(self.background, self.noise[t % len(self.noise)])  # a new array, as a camera gives
        frame[y:y + h, x:x + w] = self.target
        return frame


def looped_clip(path):
    return LoopedClip(str(path))


def fake_webcam(index):
    return FakeWebcam(int(index))
