"""Scoring trackers' raw results against a dataset's sequences."""
from dataclasses import dataclass, field

import numpy as np

from . import metrics
from .datasets import DATASETS
from .errors import EvalError
from .results import find_trackers, match_results, read_prediction


@dataclass
class TrackerScore:
    """One tracker on one dataset: per-sequence curves and the numbers derived from them."""

    tracker: str
    dataset: str
    convention: str
    names: list
    curves: list  # one metrics.sequence_curves dict per scored sequence, in `names` order
    missing: list = field(default_factory=list)
    short: list = field(default_factory=list)  # results with fewer lines than frames (padded)
    got10k: dict = None

    @property
    def n_seqs(self):
        return len(self.names)

    def mean_curves(self, names=None):
        """Curves averaged over all scored sequences, or over `names` (an attribute subset)."""
        chosen = self.curves if names is None else [
            c for n, c in zip(self.names, self.curves) if n in names]
        return metrics.average_curves(chosen, self.convention)

    def summary(self, names=None):
        return metrics.summarize(self.mean_curves(names))

    def as_json(self):
        out = dict(self.summary())
        out["n_seqs"] = self.n_seqs
        if self.got10k is not None:
            out.update(self.got10k)
        return out


def score_tracker(tracker, result_folder, sequences, dataset, convention=None):
    """Score the result files in one folder; sequences without a result are listed in `missing`."""
    convention = convention or (DATASETS[dataset].convention if dataset in DATASETS else "otb")
    found = match_results(sequences, result_folder)
    names, curves, ious, missing, short = [], [], [], [], []
    for seq in sequences:
        path = found.get(seq.name)
        if path is None:
            missing.append(seq.name)
            continue
        pred = read_prediction(path, seq)
        if len(pred) < len(seq):
            short.append(seq.name)
        names.append(seq.name)
        curves.append(metrics.sequence_curves(pred, seq.gt, seq.visible, convention))
        if dataset == "got10k":
            ious.append(metrics.got10k_ious(pred, seq.gt, seq.visible, seq.meta.get("resolution")))
    got = metrics.got10k_summary(ious) if dataset == "got10k" and ious else None
    return TrackerScore(tracker, dataset, convention, names, curves, missing, short, got)


def score_results(results_root, sequences, dataset, trackers=None, convention=None):
    """(scores with at least one sequence, trackers none of whose files matched) for every
    tracker (or the named ones) under results_root."""
    if any(s.meta.get("first_box_only") for s in sequences):
        raise EvalError("these sequences carry only their first box (GOT-10k test split): "
                        "their results are scored by the GOT-10k server, not locally")
    folders = find_trackers(results_root, dataset, trackers)
    scores = [score_tracker(name, folder, sequences, dataset, convention)
              for name, folder in folders.items()]
    return [s for s in scores if s.n_seqs], [s for s in scores if not s.n_seqs]


def average_scores(name, scores):
    """One TrackerScore whose per-sequence curves are the mean of ``scores``' curves (runs of one
    tracker under different seeds, say), over the sequences every one of them has. A stochastic
    tracker's single run can flip a sequence; its seeds' mean is the quantity to compare."""
    if not scores:
        raise ValueError("nothing to average")
    if len({s.convention for s in scores}) > 1:
        raise EvalError(f"{name}: the runs to average were scored under different conventions")
    names = [n for n in scores[0].names if all(n in s.names for s in scores[1:])]
    curves = []
    for n in names:
        per_run = [s.curves[s.names.index(n)] for s in scores]
        curves.append({k: (np.mean([c[k] for c in per_run], axis=0) if k != "frames" else per_run[0][k])
                       for k in per_run[0]})
    missing = sorted({n for s in scores for n in s.names} - set(names))
    return TrackerScore(name, scores[0].dataset, scores[0].convention, names, curves, missing)


def attribute_subsets(sequences):
    """{attribute: set of sequence names that have it}, for boolean attributes only."""
    subsets = {}
    for seq in sequences:
        for key, value in seq.attributes.items():
            if isinstance(value, (bool, np.bool_)):
                subsets.setdefault(key, set())
                if value:
                    subsets[key].add(seq.name)
    return {k: v for k, v in subsets.items() if v}
