"""One uniform, lazy view of a tracking sequence, whatever benchmark it comes from."""
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DatasetError


@dataclass
class Sequence:
    """A sequence as every loader returns it.

    gt is (N, 4) float x, y, w, h (NaN where a benchmark gives no box), visible is (N,) bool
    (False for absent, occluded or invalid frames as the benchmark defines them). frames lists
    the N image paths, or is empty for annotation-only sequences. start_frame is the 1-based
    number, in the original video, of frames[0]/gt[0]: OTB's Tiger1 is scored from frame 6, so
    its sequence starts there and init_omit = 5 frames were dropped.
    """

    name: str
    gt: np.ndarray
    visible: np.ndarray
    frames: tuple = ()
    attributes: dict = field(default_factory=dict)
    dataset: str = ""
    start_frame: int = 1
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.gt = np.asarray(self.gt, dtype=np.float64).reshape(-1, 4)
        self.visible = np.asarray(self.visible, dtype=bool).reshape(-1)
        self.frames = tuple(Path(p) for p in self.frames)
        if len(self.visible) != len(self.gt):
            raise ValueError(f"{self.name}: {len(self.visible)} visibility flags for "
                             f"{len(self.gt)} boxes")
        if self.frames and len(self.frames) != len(self.gt):
            raise ValueError(f"{self.name}: {len(self.frames)} frames for {len(self.gt)} boxes")

    def __len__(self):
        return len(self.gt)

    def __repr__(self):
        kind = f"{len(self.frames)} frames" if self.frames else "annotation only"
        return f"Sequence({self.name!r}, {len(self)} boxes, {kind})"

    @property
    def init_omit(self):
        return self.start_frame - 1

    @property
    def init_box(self):
        return self.gt[0].copy()

    def frame(self, i):
        """Frame i (0-based) as a BGR uint8 array, read only now (cv2 imported lazily)."""
        if not self.frames:
            raise DatasetError(f"sequence {self.name} has annotations only, no frames")
        import cv2

        path = self.frames[i]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise DatasetError("cannot read image", path)
        return image
