"""Decoding ahead on a thread gives exactly the frames a plain read loop gives, and stops cleanly."""
import threading
import time

import numpy as np
import pytest

from test_tracker_kit import synthetic_sequence, write_video
from tracker import video


def _frames(path, prefetch):
    with video.open_video(path, prefetch=prefetch) as src:
        return list(src)


def test_prefetched_frames_equal_sequential_ones(tmp_path):
    frames, _ = synthetic_sequence(5, n=25, size=(96, 64), target=(20, 16))
    write_video(tmp_path / "v.avi", frames)
    plain = _frames(tmp_path / "v.avi", 0)
    ahead = _frames(tmp_path / "v.avi", 3)
    assert len(plain) == len(ahead) == 25
    assert all(np.array_equal(a, b) for a, b in zip(plain, ahead))


class _EndlessCapture:
    """A camera-like source that never ends, counting its reads; optionally fails at a given read."""

    def __init__(self, fail_at=None):
        self.reads, self.released, self.fail_at = 0, False, fail_at

    def read(self):
        self.reads += 1
        if self.fail_at is not None and self.reads >= self.fail_at:
            raise RuntimeError("device unplugged")
        return True, np.full((8, 8, 3), self.reads % 256, np.uint8)

    def get(self, prop):
        return 0.0

    def release(self):
        self.released = True


def test_closing_mid_stream_stops_the_decoder_before_release():
    cap = _EndlessCapture()
    src = video.FrameSource(cap, "endless", live=False, prefetch=2)
    got = [int(src.read()[0, 0, 0]) for _ in range(5)]
    assert got == [1, 2, 3, 4, 5]  # in order, none skipped
    before = threading.active_count()
    src.close()
    assert cap.released and threading.active_count() == before - 1
    reads = cap.reads
    time.sleep(0.05)
    assert cap.reads == reads <= 5 + 2 + 1  # nothing reads after close; at most depth (+1 blocked) ahead


def test_what_the_capture_raises_reaches_the_reader_in_order():
    src = video.FrameSource(_EndlessCapture(fail_at=4), "flaky", live=False, prefetch=2)
    got = [int(src.read()[0, 0, 0]) for _ in range(3)]
    with pytest.raises(RuntimeError, match="unplugged"):  # after the frames read before it, not instead
        src.read()
    assert got == [1, 2, 3]
    src.close()


def test_ctrl_c_on_the_decoding_thread_interrupts_the_reader():
    class Interrupting(_EndlessCapture):
        def read(self):
            if self.reads == 2:
                self.reads += 1
                raise KeyboardInterrupt
            return super().read()
    src = video.FrameSource(Interrupting(), "cam", live=False, prefetch=3)
    assert src.read() is not None and src.read() is not None
    with pytest.raises(KeyboardInterrupt):
        src.read()
    src.close()


def test_live_sources_are_never_queued():
    src = video.FrameSource(_EndlessCapture(), "#0", live=True, prefetch=4)
    assert src._ahead is None  # a webcam must hand over its newest frame, not one decoded earlier
    src.close()


class _BusyCapture(_EndlessCapture):
    """Each read burns ~2 ms of CPU on the calling thread, like a real decoder."""

    def read(self):
        end = time.thread_time() + 0.002
        while time.thread_time() < end:
            pass
        return super().read()


def test_decode_cpu_time_counts_the_prefetch_thread_only():
    src = video.FrameSource(_BusyCapture(), "busy", live=False, prefetch=4)
    try:
        mine = time.thread_time()
        for _ in range(30):
            src.read()
        mine = time.thread_time() - mine
        decoded = src.decode_cpu_time()
        assert decoded >= 30 * 0.002 * 0.9  # at least the 30 reads it did for us (it may be ahead)
        assert mine < decoded  # the reader waited, it did not decode
    finally:
        src.close()
    assert video.FrameSource(_EndlessCapture(), "plain", live=False).decode_cpu_time() == 0.0
