"""The tracker's learning step on a second thread, overlapped with the next frame's backbone pass.

After frame t's box is known, the tracker learns from it: the scale filter's and the colour
model's running averages, a new sample and a few conjugate-gradient steps of the online filter
(about a fifth of a resnet16-half frame; BENCHMARKS.md "Per-frame work, round 5"). None of it is
needed until frame t+1's response is scored, after its search crop has gone through the backbone.
So the learning runs on a thread of its own while the caller's thread decodes, crops and embeds
frame t+1, and ``wait`` joins it before the learned state is read. Each step runs exactly the operations it
would run inline, in the same order, on single-threaded pools: the boxes are the same to the bit.

The heavy parts (torch's FFTs and products, the compiled spectral sums, OpenCV) release the GIL,
so the two threads run side by side on two cores; the Python between them does not, which is why
a short frame (a B2NN's) gains nothing.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import torch


class Learner:
    """Runs learning steps inline, or (``background=True``) one at a time on a worker thread."""

    def __init__(self, background: bool):
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="b2track-learn") if background else None
        self._pending: Future | None = None

    @property
    def background(self) -> bool:
        return self._pool is not None

    def run(self, step, *args) -> None:
        """Run ``step(*args)`` now, or start it on the worker after the previous one has finished."""
        if self._pool is None:
            step(*args)
            return
        self.wait()
        self._pending = self._pool.submit(_inference, step, *args)

    def wait(self) -> None:
        """Block until the step in flight has finished; its exception, if any, is raised here."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        self.wait()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def _inference(step, *args):
    # inference mode is per thread: the samples and filters were made in it and are updated in place
    with torch.inference_mode():
        return step(*args)
