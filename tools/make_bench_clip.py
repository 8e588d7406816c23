#!/usr/bin/env python
"""Write the 1280x720, 400-frame clip the speed benchmarks track (a walking woman, 10 fps).

OpenCV's sample video vtest.avi (768x576, pedestrians; tools/prepare_data.py
fetches it with the opencv-doc package for the held-out clips) has no cut and
one pedestrian visible for 200 frames from frame 540: those frames forward,
then backward (so the target stays in view for 400 frames), upscaled to
1280x720 as a user's HD video would be.

    python tools/make_bench_clip.py                       # -> data_cache/bench/vtest720.mp4
    python tools/bench_track_fps.py --video data_cache/bench/vtest720.mp4 --init 470,471,88,168 --max-frames 400
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "data_cache/heldout/.sources/opencv-doc/usr/share/doc/opencv-doc/examples/data/vtest.avi"
FIRST, COUNT = 540, 200  # 1-based first frame, frames played forward (then backward)
SIZE = (1280, 720)
INIT = "470,471,88,168"  # the woman at frame 540, in the upscaled frame


def fail(msg: str):
    print(f"make_bench_clip: error: {msg}", file=sys.stderr)
    sys.exit(2)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", default=str(SOURCE), help="vtest.avi (default: where tools/prepare_data.py puts it)")
    p.add_argument("--out", default=str(REPO / "data_cache/bench/vtest720.mp4"))
    a = p.parse_args(argv)
    cap = cv2.VideoCapture(a.source)
    if not cap.isOpened():
        fail(f"cannot open {a.source} (run tools/prepare_data.py first)")
    cap.set(cv2.CAP_PROP_POS_FRAMES, FIRST - 1)
    frames = []
    for _ in range(COUNT):
        ok, f = cap.read()
        if not ok:
            fail(f"{a.source} ends before frame {FIRST + COUNT - 1}")
        frames.append(cv2.resize(f, SIZE, interpolation=cv2.INTER_LINEAR))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    w = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, SIZE)
    if not w.isOpened():
        fail(f"cannot write {out}")
    for f in frames + frames[::-1]:
        w.write(f)
    w.release()
    print(f"{out}: {2 * COUNT} frames, {SIZE[0]}x{SIZE[1]}; init box {INIT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
