"""OpenCV trackers (CSRT, KCF, NanoTrack v2) behind the harness's init/update interface."""
from pathlib import Path

import numpy as np

from .errors import EvalError


def _construct(name, *args):
    """cv2.<name>.create(...) where it exists, else the older cv2.<name>_create(...)."""
    import cv2

    cls = getattr(cv2, name, None)
    if cls is not None and hasattr(cls, "create"):
        return cls.create(*args)
    legacy = getattr(cv2, f"{name}_create", None)
    if legacy is None:
        raise EvalError(f"this OpenCV ({cv2.__version__}) has no {name}; "
                        "CSRT and KCF need opencv-contrib-python")
    return legacy(*args)


def _int_box(box, image):
    """OpenCV wants an integer rectangle inside the image; keep at least 1x1."""
    h, w = image.shape[:2]
    x, y, bw, bh = (float(v) for v in box)
    x0 = int(round(min(max(x, 0), w - 1)))
    y0 = int(round(min(max(y, 0), h - 1)))
    x1 = int(round(min(max(x + bw, x0 + 1), w)))
    y1 = int(round(min(max(y + bh, y0 + 1), h)))
    return (x0, y0, max(1, x1 - x0), max(1, y1 - y0))


class OpenCVTracker:
    """Wraps a cv2.Tracker: init(image, box), update(image) -> x,y,w,h.

    When OpenCV reports a failure the previous box is returned, as a tracker that keeps its last
    estimate would (the metrics would do the same with a non-positive box).
    """

    def __init__(self, make):
        self._make = make
        self._tracker = None
        self._box = None

    def init(self, image, box):
        self._tracker = self._make()
        self._box = np.asarray(box, dtype=np.float64)
        self._tracker.init(image, _int_box(box, image))

    def update(self, image):
        ok, box = self._tracker.update(image)
        if ok and box[2] > 0 and box[3] > 0:
            self._box = np.asarray(box, dtype=np.float64)
        return self._box.copy()


def csrt():
    return OpenCVTracker(lambda: _construct("TrackerCSRT"))


def kcf():
    return OpenCVTracker(lambda: _construct("TrackerKCF"))


def nanotrack_files(folder):
    """(backbone, neckhead) ONNX paths of NanoTrack v2 in folder, or a clear EvalError."""
    if folder is None:
        raise EvalError("nanotrack needs --nanotrack-dir DIR holding its two ONNX files "
                        "(e.g. ../shared/data/peers/nanotrack_v2)")
    folder = Path(folder)
    if not folder.is_dir():
        raise EvalError(f"NanoTrack folder not found: {folder}")
    backbone = sorted(folder.glob("*backbone*.onnx"))
    head = sorted(folder.glob("*head*.onnx"))
    if not backbone or not head:
        raise EvalError(f"NanoTrack ONNX files missing in {folder} "
                        "(need *backbone*.onnx and *head*.onnx)")
    return backbone[0], head[0]


def nanotrack(folder):
    backbone, head = nanotrack_files(folder)

    def make():
        import cv2

        params = cv2.TrackerNano_Params()
        params.backbone = str(backbone)
        params.neckhead = str(head)
        return _construct("TrackerNano", params)

    return OpenCVTracker(make)
