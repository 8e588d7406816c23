"""b2track as a TraX tracker, the protocol the VOT toolkit talks: ``python -m tracker.trax``.

The toolkit starts this module (its ``trackers.ini`` names it, see the README's "Field toolkits"),
sends the first frame with the initial rectangle, then one frame at a time; each reply is the
tracker's box as a rectangle, with the tracker's confidence as a ``confidence`` property.
Frames come as file paths (the toolkit's default) and are read with OpenCV, as ``track`` reads them.

    python -m tracker.trax --tracker dimp --budget 0.3 --threads 1

The TraX exchange runs over this process's stdin/stdout (or the socket the toolkit sets in
TRAX_SOCKET), so nothing here prints to stdout. A user error before the session (a budget out of
range, a missing checkpoint, ``vot-trax`` not installed) is one line on stderr and exit status 2;
a frame that cannot be read ends the session with that reason sent to the toolkit, then the same.
"""
from __future__ import annotations

import sys

from tracker.cli_common import CLIError, Parser, parse_key_values, run_cli

PROG = "tracker.trax"


def build_parser() -> Parser:
    p = Parser(prog=f"python -m {PROG}",
               description="Serve a b2track tracker over TraX (rectangle regions, frames as file paths) "
                           "for the VOT toolkit.")
    p.add_argument("--tracker", default="dimp", metavar="NAME", help="siamfc or dimp (default)")
    p.add_argument("--budget", type=float, metavar="B",
                   help="zoo model with the largest budget <= B, in (0, 1] (default 1.0, full precision)")
    p.add_argument("--model", metavar="CKPT|URL", help="a b2track checkpoint instead of a zoo model")
    p.add_argument("--threads", type=int, metavar="N", help="torch threads (default: torch's choice)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="override a tracker parameter (repeatable), as track --param")
    p.add_argument("--log", metavar="FILE", help="write TraX's protocol log to FILE (debugging)")
    return p


def load_tracker(args):
    """The tracker the options name; CLIError (one line) for any problem, before TraX starts."""
    from .api import create_tracker
    from .zoo import ModelError
    if args.budget is not None and not (0.0 < args.budget <= 1.0):
        raise CLIError(f"--budget must be in (0, 1], got {args.budget:g}")
    if args.threads is not None and args.threads < 1:
        raise CLIError(f"--threads must be >= 1, got {args.threads}")
    try:
        return create_tracker(args.tracker, budget=args.budget, model=args.model, threads=args.threads,
                              **parse_key_values(args.param, "--param"))
    except (ModelError, ValueError) as e:
        raise CLIError(str(e)) from None


def read_frame(request):
    """The colour frame of a TraX request as OpenCV's BGR array (the pixels ``track`` feeds the tracker)."""
    import cv2
    import numpy as np
    image = request.image.get("color") if request.image else None
    if image is None:
        raise CLIError("the TraX client sent no colour image")
    path = image.path()
    # imdecode, not imread: the same decoder and pixels, but no OpenCV warning beside our one line
    try:
        frame = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_COLOR)
    except OSError as e:
        raise CLIError(f"cannot read frame {path}: {e.strerror or e}") from None
    if frame is None:
        raise CLIError(f"cannot read frame {path}: not an image OpenCV decodes")
    return frame


def serve(tracker, log=None) -> None:
    """Answer the TraX client until it quits: INITIALIZE (re)starts the target, FRAME tracks one frame."""
    import trax
    from trax.image import Image
    from trax.region import Rectangle, Region
    from trax.server import Server

    try:
        server = Server([Region.RECTANGLE], [Image.PATH], log=log or False,
                        tracker_name="b2track", tracker_family="b2track")
    except trax.TraxException as e:
        raise CLIError(f"cannot start the TraX session: {e}") from None
    try:
        while True:
            request = server.wait()
            if request.type == trax.TraxStatus.QUIT:
                break
            frame = read_frame(request)
            if request.type == trax.TraxStatus.INITIALIZE:
                region = request.objects[0][0]
                try:
                    tracker.init(frame, region.bounds())
                except ValueError as e:  # an empty or non-finite initial box
                    raise CLIError(str(e)) from None
                server.status([(region, {"confidence": "1"})])
            else:
                x, y, w, h = (float(v) for v in tracker.update(frame))
                confidence = float(getattr(tracker, "confidence", float("nan")))
                server.status([(Rectangle.create(x, y, w, h), {"confidence": f"{confidence:.4f}"})])
    except CLIError as e:
        _quit(server, str(e))  # the toolkit's log then says why the tracker stopped
        raise
    except trax.TraxException as e:  # the client went away or broke the protocol
        raise CLIError(f"TraX session failed: {e}") from None
    else:
        _quit(server, None)


def _quit(server, reason) -> None:
    try:
        server.quit(reason=reason)
    except Exception:  # noqa: BLE001 - the client may already be gone; the error that matters is ours
        pass


def run(args) -> int:
    try:
        import trax  # noqa: F401 - fail here, in one line, before loading a model
    except ImportError:
        raise CLIError('the TraX protocol needs the vot-trax package: pip install "b2track[vot]"') from None
    serve(load_tracker(args), log=args.log)
    return 0


def main(argv=None) -> None:
    sys.exit(run_cli(PROG, lambda: run(build_parser().parse_args(argv))))


if __name__ == "__main__":
    main()
