"""Several targets in one run: one tracker per target, one backbone pass per frame for all of them.

    from tracker.multi import create_multi_tracker
    mt = create_multi_tracker("dimp", budget=0.3, threads=1)
    mt.init(frame, [(x, y, w, h), (x2, y2, w2, h2)])
    boxes = mt.update(next_frame)     # (N, 4) array, row i = target i
    mt.scores, mt.lost                # per target, as a single tracker's score / lost

Each target has a tracker of its own (online filter, scale filter, colour model, distractors,
lost state), all of one class and parameters and sharing one network. A frame runs every
tracker's ``prepare`` (its search crops), then the backbone once over the crops of all targets,
then every tracker's ``finish`` (the box from its features). Crops of one size form one batch:
the search crops of tracked targets are one batch, the larger re-detection crops of lost
targets another.

The backbone's output for a crop does not depend on the other crops in its batch (convolutions
and the packed kernels work image by image), so each target's boxes are the ones its tracker
gives when run alone; tests/test_multi_target.py holds that to equality.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

from . import crops
from .registry import DEFAULT_TRACKER

__all__ = ["MultiTracker", "create_multi_tracker", "track_many"]


class MultiTracker:
    """N trackers of the class, parameters and network of ``prototype``, run with batched backbone passes.

    ``prototype`` is a ready tracker (e.g. ``create_tracker``'s); it serves as a template only:
    ``init`` gives every target a fresh tracker, so the targets may change between ``init`` calls.
    """

    def __init__(self, prototype):
        self.prototype = prototype
        self.model = prototype.model
        self.info = dict(getattr(prototype, "info", {}))
        self.trackers: list = []

    def __len__(self) -> int:
        return len(self.trackers)

    def init(self, image: np.ndarray, boxes: Sequence) -> None:
        """Start tracking one target per (x, y, w, h) box in ``boxes`` (at least one)."""
        boxes = list(boxes)
        if not boxes:
            raise ValueError("init needs at least one box")
        trackers = [type(self.prototype)(self.model, self.prototype.params) for _ in boxes]
        for t, box in zip(trackers, boxes):
            t.info = self.info
            t.init(image, box)  # each target learns its own first-frame state (exemplar, filter, colours)
        self.trackers = trackers

    @torch.inference_mode()
    def update(self, image: np.ndarray) -> np.ndarray:
        """The targets' boxes in the next frame, (N, 4) x, y, w, h."""
        if not self.trackers:
            raise RuntimeError("call init(image, boxes) before update(image)")
        img = self.trackers[0]._bgr(image)  # one conversion and one mean colour for every target
        pad = crops.FramePad(img)
        frames = [t.prepare(img, pad) for t in self.trackers]
        self._embed_all(frames)
        boxes, grey = [], None
        for t, f in zip(self.trackers, frames):
            f.grey = grey  # the grey frame, made by the first target whose scale filter needs it
            boxes.append(t.finish(f))
            grey = f.grey
        return np.stack(boxes)

    def _embed_all(self, frames: list) -> None:
        """Set every frame's features (f.xf) with one backbone pass per crop size."""
        by_size: dict[tuple, list] = {}
        for f in frames:
            by_size.setdefault(f.patches.shape[1:], []).append(f)
        for same in by_size.values():
            patches = same[0].patches if len(same) == 1 else np.concatenate([f.patches for f in same])
            xf = self.model.embed(crops.to_tensor_batch(patches))
            start = 0
            for f in same:
                f.xf = xf[start: start + len(f.patches)]
                start += len(f.patches)

    def track(self, image: np.ndarray) -> tuple[list[bool], list[tuple]]:
        """OpenCV-style: (ok per target, box per target); ok is False when that target's confidence is low."""
        boxes = self.update(image)
        return self.ok, [tuple(float(v) for v in b) for b in boxes]

    @property
    def ok(self) -> list[bool]:
        return [bool(t.confidence >= t.params.ok_threshold) for t in self.trackers]

    @property
    def scores(self) -> list[float]:
        """Each target's confidence of the last update in [0, 1] (0 while it is lost)."""
        return [t.score for t in self.trackers]

    @property
    def lost(self) -> list[bool]:
        """Per target: True while it counts as lost and is searched for."""
        return [t.lost for t in self.trackers]


def create_multi_tracker(name: str = DEFAULT_TRACKER, **kw) -> MultiTracker:
    """A MultiTracker whose targets are ``create_tracker(name, **kw)`` trackers (budget, model,
    threads, parameters: the same keywords); the network is loaded once for all targets."""
    from .api import create_tracker
    return MultiTracker(create_tracker(name, **kw))


def track_many(frames: Iterable[np.ndarray], boxes: Sequence, name: str = DEFAULT_TRACKER, **kw) -> np.ndarray:
    """Track ``boxes`` (N x (x, y, w, h), in the first frame) through ``frames``: (T, N, 4) boxes,
    the first row the given ones. Keywords as ``create_multi_tracker``'s."""
    it = iter(frames)
    try:
        first = next(it)
    except StopIteration:
        raise ValueError("track_many needs at least one frame") from None
    mt = create_multi_tracker(name, **kw)
    mt.init(first, boxes)
    out = [np.asarray(boxes, dtype=np.float64).reshape(-1, 4)]
    out += [mt.update(frame) for frame in it]
    return np.stack(out)
