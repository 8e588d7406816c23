"""The learning thread (tracker/overlap.py): with threads >= 2 the learning from frame t runs beside
frame t+1's backbone pass, and the boxes must be those of one thread, bit for bit."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from test_multi_target import three_targets
from test_tracker_kit import synthetic_sequence
from tests.helpers.threads import one_thread  # noqa: F401  (autouse fixture)
from tracker.api import create_tracker
from tracker.model import pool_threads
from tracker.multi import MultiTracker
from tracker.overlap import Learner


def run(tracker, frames, box, scribble=False):
    """(boxes, scores, lost) over frames[1:]; ``scribble``: the caller reuses each frame's buffer as
    soon as update returns (here: blacks it out), which the learning thread must not see."""
    tracker.init(frames[0].copy(), box)
    out = []
    for f in frames[1:]:
        f = f.copy()
        out.append((tracker.update(f), tracker.score, tracker.lost))
        if scribble:
            f[:] = 0
    tracker.learner.wait()
    return tuple(np.array(v) for v in zip(*out))


@pytest.mark.parametrize("budget", [1.0, 0.3])
def test_two_threads_give_the_one_thread_boxes_even_when_the_caller_reuses_its_frames(budget):
    """The shipped zoo models; the colour model, scale filter and online filter all learn every frame."""
    frames, gt = synthetic_sequence(31, n=24)
    one = run(create_tracker("dimp", budget=budget, threads=1), frames, gt[0])
    torch.set_num_threads(2)
    two_tracker = create_tracker("dimp", budget=budget, threads=2)
    two = run(two_tracker, frames, gt[0], scribble=True)
    assert two_tracker.learner.background
    assert torch.get_num_threads() == 1  # two tracker threads: one learns, the pools get the other
    for a, b in zip(one, two):
        assert np.array_equal(a, b)


def test_several_targets_each_learn_beside_the_backbone_with_the_same_boxes():
    frames, gt = three_targets()
    alone = [run(create_tracker("dimp", budget=0.3, threads=1), frames, gt[0, k])[0] for k in range(3)]
    mt = MultiTracker(create_tracker("dimp", budget=0.3, threads=2))
    mt.init(frames[0], gt[0])
    together = np.stack([mt.update(f) for f in frames[1:]])
    for t in mt.trackers:
        t.learner.wait()
    assert all(t.learner.background for t in mt.trackers)
    for k in range(3):
        assert np.array_equal(alone[k], together[:, k])


def test_the_learning_runs_on_its_own_thread_and_its_errors_reach_the_caller():
    seen = []
    learner = Learner(background=True)
    learner.run(lambda: seen.append((threading.current_thread().name, torch.is_inference_mode_enabled())))
    learner.wait()
    assert seen[0][0].startswith("b2track-learn") and seen[0][1]  # inference mode: the samples are updated in place

    def fail():
        raise RuntimeError("boom")

    learner.run(fail)
    with pytest.raises(RuntimeError, match="boom"):
        learner.wait()
    learner.wait()  # raised once, then clear
    learner.close()
    inline = Learner(background=False)
    inline.run(lambda: seen.append(threading.current_thread().name))
    assert seen[-1] == threading.current_thread().name


def test_a_learning_error_surfaces_at_the_next_update():
    frames, gt = synthetic_sequence(32, n=4)
    t = create_tracker("dimp", budget=0.3, threads=2)
    t.init(frames[0], gt[0])

    def broken(lesson):
        raise RuntimeError("learning failed")

    t._learn = broken
    t.update(frames[1])  # the step starts on the learning thread
    with pytest.raises(RuntimeError, match="learning failed"):
        t.update(frames[2])


def test_the_pools_give_one_thread_to_the_learning_from_two_on():
    assert [pool_threads(n) for n in (None, 1, 2, 3, 8)] == [None, 1, 1, 2, 7]
