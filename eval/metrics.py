"""Tracking metrics, vectorised with numpy, as the official OTB-2015 and LaSOT toolkits define them.

Definitions (OTB-2015 and LaSOT toolkits):
- boxes are x, y, w, h; the centre is x + (w-1)/2, y + (h-1)/2;
- success curve: fraction of frames with IoU > t for t = 0, 0.05, ..., 1; AUC = mean of the curve;
- precision curve: fraction with centre error <= t px, t = 0..50; P@20 is its value at 20;
- normalized precision: centre error with dx / gt w and dy / gt h, t = 0..0.5 step 0.01; NP@0.20;
- frame 1 is replaced by the ground truth; a NaN or non-positive-size prediction by the previous;
- frames without a valid ground truth count as failures, the denominator is the whole length;
- per-sequence curves are averaged over sequences.

The OTB toolkit has one quirk that its published numbers depend on: it gives frames with an
invalid ground truth a centre error of -1, which is <= every precision threshold, so for precision
those frames count as hits (SiamFC P@20 0.7717 vs 0.7711 otherwise). Convention "otb" reproduces it;
the LaSOT toolkit does not have it (convention "lasot"). Other conventions are explicit options.
"""
from dataclasses import dataclass

import numpy as np

SUCCESS_THRESHOLDS = np.arange(21) / 20.0
PRECISION_THRESHOLDS = np.arange(51, dtype=np.float64)
NORM_PRECISION_THRESHOLDS = np.arange(51) / 100.0
# Index of 20 px in PRECISION_THRESHOLDS and of 0.20 in NORM_PRECISION_THRESHOLDS.
AT_20 = 20


@dataclass(frozen=True)
class Convention:
    """How frames without a valid ground truth and the averaging are handled.

    invalid_center_hit: invalid frames count as precision hits (OTB toolkit artefact).
    visible_only: denominators count valid frames only (pysot-style LaSOT, got10k-style), not
        the official definition.
    pooled: average over all frames of all sequences instead of per-sequence curves (got10k AO
        style), not the official definition.
    """

    name: str
    invalid_center_hit: bool = False
    visible_only: bool = False
    pooled: bool = False


CONVENTIONS = {
    "otb": Convention("otb", invalid_center_hit=True),
    "lasot": Convention("lasot"),
    "visible": Convention("visible", visible_only=True),
    "pooled": Convention("pooled", pooled=True),
}


def get_convention(name):
    if isinstance(name, Convention):
        return name
    try:
        return CONVENTIONS[name]
    except KeyError:
        raise ValueError(f"unknown convention {name!r} "
                         f"(choose from {', '.join(CONVENTIONS)})") from None


def iou(a, b):
    """Intersection over union of matching rows of two (N, 4) x,y,w,h arrays (continuous area,
    which equals the OTB toolkit's pixel-count formula: its -1/+1 cancel)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    iw = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    ih = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        out = inter / union
    # A degenerate union (two empty boxes) is no overlap, not NaN.
    return np.where(union > 0, out, 0.0)


def centers(boxes):
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return boxes[:, :2] + (boxes[:, 2:] - 1) / 2


def center_error(pred, gt):
    """Euclidean distance in pixels between the centres of matching rows."""
    return np.hypot(*(centers(pred) - centers(gt)).T)


def normalized_center_error(pred, gt):
    """Centre offset with x divided by the ground-truth width and y by its height (LaSOT)."""
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = (centers(pred) - centers(gt)) / gt[:, 2:]
    return np.hypot(*d.T)


def prepare_predictions(pred, gt):
    """Predictions as the toolkits score them, one row per ground-truth frame.

    Frame 1 becomes the ground truth; rows missing at the end (a result file one line short)
    and rows with NaN/inf or a non-positive width or height take the previous row's value;
    rows beyond the ground truth are dropped.
    """
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
    n = len(gt)
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 4)[:n]
    if len(pred) < n:
        pred = np.vstack([pred, np.full((n - len(pred), 4), np.nan)])
    else:
        pred = pred.copy()
    if n == 0:
        return pred
    pred[0] = gt[0]
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(pred).all(axis=1) | (pred[:, 2] <= 0) | (pred[:, 3] <= 0)
    bad[0] = False
    if bad.any():
        # Index of the last good row at or before each frame: a forward fill without a loop.
        last_good = np.maximum.accumulate(np.where(bad, 0, np.arange(n)))
        pred = pred[last_good]
    return pred


def sequence_curves(pred, gt, valid, convention="otb"):
    """Success, precision and normalized-precision curves of one sequence.

    valid marks frames with a usable ground truth (OTB: all four values > 0; LaSOT: not absent).
    Returns a dict of the three curves and `frames`, the denominator used.
    """
    conv = get_convention(convention)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
    valid = np.asarray(valid, dtype=bool).reshape(-1)
    pred = prepare_predictions(pred, gt)
    overlap = np.where(valid, iou(pred, gt), -1.0)
    # Invalid frames: never above an IoU threshold; for precision a miss, or a hit (OTB quirk).
    missing = -1.0 if conv.invalid_center_hit else np.inf
    ce = np.where(valid, center_error(pred, gt), missing)
    with np.errstate(invalid="ignore"):
        nce = np.where(valid, normalized_center_error(pred, gt), missing)
    ce = np.nan_to_num(ce, nan=np.inf)
    nce = np.nan_to_num(nce, nan=np.inf)
    if conv.visible_only:
        overlap, ce, nce = overlap[valid], ce[valid], nce[valid]
    frames = len(overlap)
    if frames == 0:
        zeros = np.zeros(len(SUCCESS_THRESHOLDS))
        return {"success": zeros, "precision": np.zeros(51), "norm_precision": np.zeros(51),
                "frames": 0}
    return {
        "success": (overlap[:, None] > SUCCESS_THRESHOLDS[None, :]).mean(axis=0),
        "precision": (ce[:, None] <= PRECISION_THRESHOLDS[None, :]).mean(axis=0),
        "norm_precision": (nce[:, None] <= NORM_PRECISION_THRESHOLDS[None, :]).mean(axis=0),
        "frames": frames,
    }


def average_curves(per_sequence, convention="otb"):
    """Mean curves over sequences (official), or over all frames with the "pooled" convention."""
    conv = get_convention(convention)
    if not per_sequence:
        raise ValueError("no sequences to average")
    out = {}
    weights = np.array([c["frames"] for c in per_sequence], dtype=np.float64)
    for key in ("success", "precision", "norm_precision"):
        stack = np.stack([c[key] for c in per_sequence])
        if conv.pooled:
            out[key] = (stack * weights[:, None]).sum(axis=0) / max(weights.sum(), 1.0)
        else:
            out[key] = stack.mean(axis=0)
    return out


def summarize(curves):
    """The headline numbers of averaged curves: AUC, P@20 and NP@0.20."""
    return {
        "auc": float(np.mean(curves["success"])),
        "precision": float(curves["precision"][AT_20]),
        "norm_precision": float(curves["norm_precision"][AT_20]),
    }


def clip_to_image(boxes, size):
    """Boxes clipped as the GOT-10k toolkit does before its IoU: x into [0, W], then w into
    [0, W - x] (the same for y, h)."""
    boxes = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    width, height = size
    boxes[:, 0] = np.clip(boxes[:, 0], 0, width)
    boxes[:, 1] = np.clip(boxes[:, 1], 0, height)
    boxes[:, 2] = np.clip(boxes[:, 2], 0, width - boxes[:, 0])
    boxes[:, 3] = np.clip(boxes[:, 3], 0, height - boxes[:, 1])
    return boxes


def got10k_ious(pred, gt, valid, image_size=None):
    """Per-frame IoUs that GOT-10k scores: frame 1 skipped, only visible frames (cover > 0),
    boxes clipped to the image when its size is known."""
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
    pred = prepare_predictions(pred, gt)
    if image_size is not None:
        pred, gt = clip_to_image(pred, image_size), clip_to_image(gt, image_size)
    keep = np.asarray(valid, dtype=bool).copy()
    keep[0] = False
    return np.clip(iou(pred[keep], gt[keep]), 0.0, 1.0)


def got10k_summary(per_sequence_ious, pooled=True):
    """AO, SR@0.5 and SR@0.75. The toolkit pools the frames of all sequences; pooled=False
    averages per-sequence values instead."""
    if pooled:
        ious = np.concatenate([np.asarray(x, dtype=np.float64) for x in per_sequence_ious])
        if ious.size == 0:
            return {"ao": 0.0, "sr50": 0.0, "sr75": 0.0}
        return {"ao": float(ious.mean()), "sr50": float((ious > 0.5).mean()),
                "sr75": float((ious > 0.75).mean())}
    per = [got10k_summary([x]) for x in per_sequence_ious if len(x)]
    if not per:
        return {"ao": 0.0, "sr50": 0.0, "sr75": 0.0}
    return {k: float(np.mean([p[k] for p in per])) for k in ("ao", "sr50", "sr75")}
