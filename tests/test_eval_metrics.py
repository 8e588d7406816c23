"""Metrics on hand-made cases whose values are worked out by hand below."""
import numpy as np
import pytest

from eval import metrics
from eval.datasets.vot import polygon_to_box
from eval.names import match_names

GT = np.array([10.0, 10.0, 20.0, 20.0])


def seq(box, n):
    return np.tile(np.asarray(box, dtype=float), (n, 1))


def test_iou_and_center_error_by_hand():
    # Shift by 5 px in x: intersection 15*20 = 300, union 400 + 400 - 300 = 500.
    assert metrics.iou([GT], [[15, 10, 20, 20]])[0] == pytest.approx(0.6)
    # Shift by (3, 4): intersection 17*16 = 272, union 800 - 272 = 528; centre error 5.
    assert metrics.iou([GT], [[13, 14, 20, 20]])[0] == pytest.approx(272 / 528)
    assert metrics.center_error([[13, 14, 20, 20]], [GT])[0] == pytest.approx(5.0)
    # Centre is x + (w-1)/2: a 21-wide box at x=10 has centre 20, a 20-wide one 19.5.
    assert metrics.centers([[10, 10, 21, 20]])[0] == pytest.approx([20.0, 19.5])
    # Disjoint and degenerate boxes give 0, never NaN.
    assert metrics.iou([GT], [[100, 100, 5, 5]])[0] == 0.0
    assert metrics.iou([[0, 0, 0, 0]], [[0, 0, 0, 0]])[0] == 0.0


def test_perfect_tracker():
    gt = seq(GT, 10)
    c = metrics.sequence_curves(gt, gt, np.ones(10, bool))
    # IoU > t: identical boxes pass every threshold but t = 1 (strict inequality, as in the OTB
    # toolkit), so the best possible AUC under the official definition is 20/21.
    assert np.all(c["success"][:-1] == 1.0) and c["success"][-1] == 0.0
    s = metrics.summarize(c)
    assert s["auc"] == pytest.approx(20 / 21)
    assert s["precision"] == 1.0 and s["norm_precision"] == 1.0
    assert c["precision"][0] == 1.0  # zero centre error is within 0 px


def test_shifted_box_known_curves():
    n = 5
    gt = seq(GT, n)
    pred = seq([15, 10, 20, 20], n)  # IoU 0.6, centre error 5 px, normalized 5/20 = 0.25
    c = metrics.sequence_curves(pred, gt, np.ones(n, bool))
    # Frame 1 is replaced by the ground truth (IoU 1); frames 2..5 have IoU 0.6.
    # t = 0 .. 0.55 (12 values): 5/5; t = 0.6 .. 0.95 (8 values): 1/5; t = 1: 0.
    expected = np.array([1.0] * 12 + [0.2] * 8 + [0.0])
    assert c["success"] == pytest.approx(expected)
    assert metrics.summarize(c)["auc"] == pytest.approx((12 + 8 * 0.2) / 21)
    assert c["precision"][4] == pytest.approx(0.2) and c["precision"][5] == 1.0
    assert metrics.summarize(c)["precision"] == 1.0
    assert metrics.summarize(c)["norm_precision"] == pytest.approx(0.2)
    assert c["norm_precision"][25] == 1.0


def test_first_frame_replaced_by_ground_truth():
    gt = seq(GT, 3)
    pred = np.array([[500, 500, 1, 1], GT, GT])
    assert metrics.prepare_predictions(pred, gt)[0] == pytest.approx(GT)
    curves = metrics.sequence_curves(pred, gt, np.ones(3, bool))
    assert metrics.summarize(curves)["precision"] == 1.0


def test_bad_predictions_take_the_previous_box():
    gt = seq(GT, 6)
    pred = np.array([GT, [12, 10, 20, 20], [np.nan] * 4, [1, 1, 0, 5], [1, 1, 5, -2],
                     [30, 10, 20, 20]])
    fixed = metrics.prepare_predictions(pred, gt)
    for i in (2, 3, 4):
        assert fixed[i] == pytest.approx([12, 10, 20, 20])
    assert fixed[5] == pytest.approx([30, 10, 20, 20])
    # Short result files are padded with the last box; long ones are cut to the ground truth.
    assert metrics.prepare_predictions(pred[:2], gt)[5] == pytest.approx([12, 10, 20, 20])
    assert len(metrics.prepare_predictions(np.vstack([pred, pred]), gt)) == 6


def test_invalid_frames_fail_with_full_denominator():
    n = 4
    gt = seq(GT, n)
    gt[2] = 0  # OTB invalid box (Twinnings' last frame is 0,0,0,0)
    valid = (gt > 0).all(axis=1)
    c_otb = metrics.sequence_curves(gt.copy(), gt, valid, "otb")
    c_lasot = metrics.sequence_curves(gt.copy(), gt, valid, "lasot")
    # Success: the invalid frame fails every threshold, over all 4 frames.
    assert c_otb["success"][0] == pytest.approx(3 / 4)
    assert c_lasot["success"][0] == pytest.approx(3 / 4)
    # Precision: the OTB toolkit counts it as a hit (centre error -1), LaSOT as a miss.
    assert c_otb["precision"][20] == 1.0
    assert c_lasot["precision"][20] == pytest.approx(3 / 4)
    # Visible-only (an explicit, non-official option) drops it from the denominator.
    c_vis = metrics.sequence_curves(gt.copy(), gt, valid, "visible")
    assert c_vis["success"][0] == 1.0 and c_vis["frames"] == 3


def test_absent_frames_count_as_failures():
    gt = seq(GT, 10)
    visible = np.ones(10, bool)
    visible[5:] = False  # LaSOT absent: even a box exactly on the last position fails
    c = metrics.sequence_curves(gt.copy(), gt, visible, "lasot")
    s = metrics.summarize(c)
    assert s["precision"] == pytest.approx(0.5) and s["norm_precision"] == pytest.approx(0.5)
    assert c["success"][0] == pytest.approx(0.5)


def test_curves_are_averaged_over_sequences_not_frames():
    good = metrics.sequence_curves(seq(GT, 2), seq(GT, 2), np.ones(2, bool), "lasot")
    far = seq([300, 300, 20, 20], 8)
    far[0] = GT
    bad = metrics.sequence_curves(far, seq(GT, 8), np.ones(8, bool), "lasot")
    # Sequence means: 1.0 and 1/8 -> 0.5625; pooled frames would give (2 + 1) / 10 = 0.3.
    mean = metrics.average_curves([good, bad], "lasot")
    assert mean["precision"][20] == pytest.approx((1 + 1 / 8) / 2)
    pooled = metrics.average_curves([good, bad], "pooled")
    assert pooled["precision"][20] == pytest.approx(3 / 10)


def test_got10k_measures_skip_first_frame_and_invisible_frames():
    gt = seq(GT, 5)
    pred = np.array([GT, GT, [15, 10, 20, 20], [100, 100, 5, 5], GT])
    visible = np.array([True, True, True, True, False])
    ious = metrics.got10k_ious(pred, gt, visible)
    assert ious == pytest.approx([1.0, 0.6, 0.0])
    s = metrics.got10k_summary([ious, np.array([1.0])])
    assert s["ao"] == pytest.approx(2.6 / 4)
    assert s["sr50"] == pytest.approx(3 / 4) and s["sr75"] == pytest.approx(2 / 4)
    # Clipping to the image as the toolkit does: x into [0, W], w into [0, W - x].
    assert metrics.clip_to_image([[-5, 2, 20, 30]], (10, 20))[0] == pytest.approx([0, 2, 10, 18])


def test_polygon_to_box_keeps_centre_and_area():
    # A square of side sqrt(200) rotated 45 degrees around (10, 10).
    box = polygon_to_box([[10, 0, 20, 10, 10, 20, 0, 10]])[0]
    assert box[2] * box[3] == pytest.approx(200.0)
    assert box[:2] + box[2:] / 2 == pytest.approx([10.0, 10.0])
    # An axis-aligned rectangle stays itself.
    assert polygon_to_box([[1, 2, 11, 2, 11, 7, 1, 7]])[0] == pytest.approx([1, 2, 10, 5])


def test_name_matching_across_toolkits():
    anno = ["jogging-1", "jogging-2", "Human4", "Skating2-1", "tiger1", "Car24", "car4"]
    results = ["Jogging_1", "jogging_2", "human4-2", "skating2_1", "Tiger1", "Car24", "Car4"]
    m = match_names(anno, results)
    assert m == {"jogging-1": "Jogging_1", "jogging-2": "jogging_2", "Human4": "human4-2",
                 "Skating2-1": "skating2_1", "tiger1": "Tiger1", "Car24": "Car24",
                 "car4": "Car4"}
    # The target-number fallback never guesses between two candidates.
    assert match_names(["Human4"], ["Human4-1", "Human4-2"]) == {}
