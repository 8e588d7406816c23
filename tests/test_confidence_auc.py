"""The failure-detection ROC AUC of tools/confidence_auc.py, against hand counts."""
import math

import numpy as np

from tool_import import load_tool

roc_auc = load_tool("confidence_auc").roc_auc


def test_roc_auc_by_hand():
    y = np.array([True, True, False, False])
    assert roc_auc(np.array([0.9, 0.8, 0.2, 0.1]), y) == 1.0  # every failure above every success
    assert roc_auc(np.array([0.1, 0.2, 0.8, 0.9]), y) == 0.0
    assert roc_auc(np.array([0.5, 0.5, 0.5, 0.5]), y) == 0.5  # ties count half
    # 2 positives x 3 negatives = 6 pairs: 0.6 beats 0.1 and 0.5 and ties 0.6 (2.5), 0.4 beats only 0.1 (1)
    s = np.array([0.6, 0.4, 0.1, 0.5, 0.6])
    assert roc_auc(s, np.array([True, True, False, False, False])) == (2.5 + 1) / 6
    assert math.isnan(roc_auc(np.array([0.1, 0.2]), np.array([False, False])))
