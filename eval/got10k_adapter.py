"""b2track's trackers as got10k toolkit trackers (``pip install -e ".[got10k]"``).

    from got10k.experiments import ExperimentOTB
    from eval.got10k_adapter import B2Tracker
    ExperimentOTB("data/OTB100", version=2015).run(B2Tracker("dimp", budget=0.3))

``ExperimentOTB``, ``ExperimentGOT10k``, ``ExperimentLaSOT`` (and the toolkit's other
experiments) run a ``B2Tracker`` as they run any ``got10k.trackers.Tracker``: the toolkit opens
each frame with PIL as RGB, the adapter hands the tracker the BGR array ``track`` would read.
Result folders are named after ``B2Tracker.name`` (``dimp_b0.3`` as ``track-eval run`` names them).

The toolkit's ``ExperimentOTB`` constructor downloads every official OTB sequence missing from its
folder; ``FolderExperimentOTB`` is the same experiment (its own run, report and plots) over the
sequences ``eval.datasets`` loads from any folder, offline.
"""
from __future__ import annotations

import os

import numpy as np
from got10k.experiments import ExperimentOTB
from got10k.trackers import Tracker

from .trackers import default_label


def _bgr(image) -> np.ndarray:
    """A PIL image (what got10k passes) or an array, as a contiguous HxWx3 uint8 BGR array."""
    img = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, 2::-1])


class B2Tracker(Tracker):
    """A b2track tracker (``tracker.api.create_tracker`` arguments) with got10k's interface."""

    def __init__(self, tracker: str = "dimp", budget: float | None = None, model: str | None = None,
                 threads: int | None = None, name: str | None = None, **params):
        from tracker.api import create_tracker
        self.tracker = create_tracker(tracker, budget=budget, model=model, threads=threads, **params)
        # Deterministic (seeded at init): got10k's VOT experiment then runs each sequence once, not 3 times.
        super().__init__(name=name or default_label(tracker, budget), is_deterministic=True)

    @property
    def info(self) -> dict:
        return self.tracker.info

    def init(self, image, box) -> None:
        self.tracker.init(_bgr(image), tuple(float(v) for v in box))

    def update(self, image) -> np.ndarray:
        return np.asarray(self.tracker.update(_bgr(image)), dtype=np.float64)


class SequenceList:
    """Sequences (``eval.sequence.Sequence`` with frames) as a got10k dataset: ``seq_names`` and
    ``dataset[i] -> (img_files, anno)``."""

    def __init__(self, sequences):
        self.sequences = [s for s in sequences if s.frames]
        self.seq_names = [s.name for s in self.sequences]

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index):
        if isinstance(index, str):
            index = self.seq_names.index(index)
        s = self.sequences[index]  # IndexError past the end: ends the toolkit's for-loops
        return [str(p) for p in s.frames], s.gt.copy()


class FolderExperimentOTB(ExperimentOTB):
    """got10k's ``ExperimentOTB`` over given sequences, without its download-on-construction."""

    def __init__(self, sequences, version=2015, result_dir="results", report_dir="reports"):
        # ExperimentOTB.__init__'s fields, its values (got10k 0.1.3), with our dataset.
        self.dataset = SequenceList(sequences)
        self.result_dir = os.path.join(result_dir, "OTB" + str(version))
        self.report_dir = os.path.join(report_dir, "OTB" + str(version))
        self.nbins_iou = 21
        self.nbins_ce = 51
