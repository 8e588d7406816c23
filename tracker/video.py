"""Frame sources (video file or webcam) and the annotated-video writer.

Captures come from ``capture_factory`` (``cv2.VideoCapture`` by default), so
tests and demos can inject a fake source: assign the module attribute, or set
``B2TRACK_CAPTURE_FACTORY=package.module:callable`` for a subprocess.
"""
from __future__ import annotations

import importlib
import os
import queue
import threading
import time
from pathlib import Path

import cv2
import numpy as np

# FFmpeg logs its own line ("moov atom not found") under ours for a damaged file; read when
# OpenCV first opens a video, so this silences it unless the user asks for FFmpeg's logs.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET

capture_factory = cv2.VideoCapture
PREFETCH = 4  # frames decoded ahead of the tracker (a 720p frame is 2.8 MB)
WRITE_CONTAINERS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


class VideoError(ValueError):
    """A source or sink that cannot be used; the message is one line for the user."""


def _factory():
    spec = os.environ.get("B2TRACK_CAPTURE_FACTORY")
    if not spec:
        return capture_factory
    mod, _, attr = spec.partition(":")
    try:
        return getattr(importlib.import_module(mod), attr or "capture_factory")
    except (ImportError, AttributeError) as e:
        raise VideoError(f"B2TRACK_CAPTURE_FACTORY={spec!r} cannot be imported: {e}") from None


class _Raised:
    """An exception from the decoding thread, queued in order with the frames."""

    def __init__(self, error: BaseException):
        self.error = error


class _Prefetcher:
    """Decodes the next frames on a thread while the caller tracks the current one.

    ``cap.read()`` releases the GIL inside OpenCV, so decoding runs on the
    second core beside the tracker. A bounded queue keeps at most ``depth``
    frames ahead; ``None`` marks the end.
    """

    def __init__(self, cap, depth: int):
        self.cap, self.q, self.stop = cap, queue.Queue(maxsize=depth), threading.Event()
        self._cpu = 0.0  # the decoding thread's CPU seconds at the last reading
        self.thread = threading.Thread(target=self._run, name="b2track-decode", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                ok, frame = self.cap.read()
            except BaseException as e:  # noqa: BLE001 - handed to the reader, which raises it (Ctrl-C included)
                self._put(_Raised(e))
                return
            item = frame if ok and frame is not None else None
            self._put(item)
            if item is None:
                return

    def _put(self, item) -> None:
        while not self.stop.is_set():
            try:
                self.q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def get(self) -> np.ndarray | None:
        """The next frame, None at the end; what the capture raised on the thread is raised here."""
        while True:
            try:
                item = self.q.get(timeout=0.5)
                break
            except queue.Empty:
                if not self.thread.is_alive() and self.q.empty():
                    return None  # the thread is gone without a word: treat as the end
        if isinstance(item, _Raised):
            raise item.error
        return item

    def close(self) -> None:
        self.stop.set()
        self.thread.join()

    def cpu_time(self) -> float:
        """CPU seconds the decoding thread has used so far (its last reading once it has ended)."""
        try:
            self._cpu = time.clock_gettime(time.pthread_getcpuclockid(self.thread.ident))
        except (OSError, AttributeError):  # the thread is gone (or no per-thread clocks here)
            pass
        return self._cpu


class FrameSource:
    """Frames of an opened capture; the first frame is read up front so an empty source fails early.

    ``prefetch`` > 0 decodes that many frames ahead on a thread (files only: a
    live camera must always give its newest frame, never a queued one).
    """

    def __init__(self, cap, name: str, live: bool, prefetch: int = 0):
        self.cap, self.name, self.live = cap, name, live
        ok, frame = cap.read()
        if not ok or frame is None or getattr(frame, "size", 0) == 0:
            cap.release()
            what = "webcam" if live else "video"
            raise VideoError(f"{what} {name} gives no frames" + ("" if live else " (empty or unreadable)"))
        self.first = frame
        self.height, self.width = frame.shape[:2]
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 1.0 <= fps <= 240.0 else 25.0
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.count = n if (n > 0 and not live) else None
        self._pending = [frame]
        self._ahead = _Prefetcher(cap, prefetch) if prefetch > 0 and not live else None
        self._ended = False

    def read(self) -> np.ndarray | None:
        """Next frame (the first one included), or None at the end."""
        if self._pending:
            return self._pending.pop()
        if self._ended:
            return None
        if self._ahead is not None:
            frame = self._ahead.get()
        else:
            ok, frame = self.cap.read()
            frame = frame if ok and frame is not None else None
        self._ended = frame is None
        return frame

    def __iter__(self):
        while (f := self.read()) is not None:
            yield f

    def decode_cpu_time(self) -> float:
        """CPU seconds spent decoding ahead on the prefetch thread so far (0 without one): the
        part of the process's CPU time that is not the tracker's."""
        return self._ahead.cpu_time() if self._ahead is not None else 0.0

    def close(self) -> None:
        if self._ahead is not None:
            self._ahead.close()  # the decoding thread must be done with the capture before it is released
        self.cap.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def looks_like_text(path, probe: int = 4096) -> bool:
    """Plain text (printable UTF-8, no NUL) in the first ``probe`` bytes.

    FFmpeg's tty demuxer renders any text file as a video of ANSI art, so a
    mistyped ``--video boxes.txt`` would otherwise be "tracked". Y4M is the one
    video format with a text header; its raw frames follow it.
    """
    with open(path, "rb") as f:
        head = f.read(probe)
    if not head or head.startswith(b"YUV4MPEG2") or b"\0" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 3:  # not just a character cut at the probe's end
            return False
        text = head[: e.start].decode("utf-8")
    return all(c.isprintable() or c in "\t\n\r\f\x1b" for c in text)


def open_video(path, prefetch: int = PREFETCH) -> FrameSource:
    p = Path(path)
    if not p.exists():
        raise VideoError(f"video not found: {p}")
    if not p.is_file():
        raise VideoError(f"not a video file: {p}")
    if looks_like_text(p):
        raise VideoError(f"not a video file: {p} is text")
    cap = _factory()(str(p))
    if cap is None or not cap.isOpened():
        raise VideoError(f"cannot open video {p} (unsupported or corrupt file)")
    return FrameSource(cap, str(p), live=False, prefetch=prefetch)


def open_webcam(index: int) -> FrameSource:
    cap = _factory()(int(index))
    if cap is None or not cap.isOpened():
        raise VideoError(f"webcam {index} is not available")
    return FrameSource(cap, f"#{index}", live=True)


def has_display() -> bool:
    """Can OpenCV open a window? False on headless Linux and under Qt's offscreen platforms."""
    if os.environ.get("QT_QPA_PLATFORM", "").lower() in ("offscreen", "minimal", "vnc"):
        return False
    if os.name == "posix" and not os.uname().sysname == "Darwin":
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def annotate(frame: np.ndarray, box, text: str = "", ok: bool = True, lost: bool = False) -> np.ndarray:
    """Draw the box (green; red when the tracker is unsure; grey and crossed out while the target is
    lost and searched for) and a status line, in place."""
    x, y, w, h = (int(round(v)) for v in box)
    colour = (160, 160, 160) if lost else (0, 220, 0) if ok else (0, 0, 230)
    cv2.rectangle(frame, (x, y), (x + w - 1, y + h - 1), colour, 2)
    if lost:  # the box held where the target was last seen
        cv2.line(frame, (x, y), (x + w - 1, y + h - 1), colour, 1, cv2.LINE_AA)
        cv2.line(frame, (x + w - 1, y), (x, y + h - 1), colour, 1, cv2.LINE_AA)
    return status_line(frame, text)


def status_line(frame: np.ndarray, text: str) -> np.ndarray:
    """White text on a dark outline at the top left, in place."""
    if text:
        cv2.putText(frame, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(frame, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return frame


def target_colour(i: int) -> tuple[int, int, int]:
    """A BGR colour for target i, distinct from its neighbours' for any number of targets: hues a
    golden-ratio turn apart, starting at green (a single target's colour)."""
    hue = (1 / 3 + i * 0.6180339887) % 1.0
    hsv = np.uint8([[[round(hue * 180) % 180, 220, 240]]])
    return tuple(int(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def annotate_targets(frame: np.ndarray, boxes, ok, lost, scores, text: str = "") -> np.ndarray:
    """Several targets, in place: target i's box in ``target_colour(i)`` with '#i' and its score above it,
    drawn thin when the tracker is unsure, grey and crossed out while that target is lost."""
    for i, (box, sure, gone, score) in enumerate(zip(boxes, ok, lost, scores)):
        x, y, w, h = (int(round(v)) for v in box)
        colour = (160, 160, 160) if gone else target_colour(i)
        cv2.rectangle(frame, (x, y), (x + w - 1, y + h - 1), colour, 2 if sure and not gone else 1)
        if gone:
            cv2.line(frame, (x, y), (x + w - 1, y + h - 1), colour, 1, cv2.LINE_AA)
            cv2.line(frame, (x + w - 1, y), (x, y + h - 1), colour, 1, cv2.LINE_AA)
        tag = f"#{i} " + ("lost" if gone else f"{score:.2f}")
        at = (x, y - 5) if y >= 40 else (x + 3, y + 15)  # inside the box when the status line is above it
        cv2.putText(frame, tag, at, cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(frame, tag, at, cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    return status_line(frame, text)


class VideoWriter:
    """mp4 (mp4v) writer for annotated frames; fails at open, not silently at the end."""

    def __init__(self, path, fps: float, size: tuple[int, int]):
        self.path = Path(path)
        if not self.path.parent.is_dir():
            what = "is not a folder" if self.path.parent.exists() else "does not exist"
            raise VideoError(f"cannot write {self.path}: {self.path.parent} {what}")
        codec = WRITE_CONTAINERS.get(self.path.suffix.lower())
        if codec is None:  # OpenCV would try an image sequence and print a warning block
            names = ", ".join(WRITE_CONTAINERS)
            raise VideoError(f"cannot write video {self.path}: its name must end in one of {names}")
        fourcc = cv2.VideoWriter_fourcc(*codec)
        self.w = cv2.VideoWriter(str(self.path), fourcc, float(fps), (int(size[0]), int(size[1])))
        if not self.w.isOpened():
            raise VideoError(f"cannot write video {self.path} (unsupported container?)")

    def write(self, frame: np.ndarray) -> None:
        self.w.write(frame)

    def close(self) -> None:
        self.w.release()
