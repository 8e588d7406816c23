"""Paired bootstrap over sequences, against cases worked out by hand."""
import numpy as np
import pytest

from eval.paired import bootstrap_interval, paired_difference


def test_two_opposite_differences_span_both():
    # Resampled means of [1, -1] are 1, 0, -1 with probabilities 1/4, 1/2, 1/4.
    lo, hi = bootstrap_interval([1.0, -1.0])
    assert (lo, hi) == (-1.0, 1.0)
    assert bootstrap_interval([1.0, -1.0], level=0.4) == (0.0, 0.0)


def test_equal_differences_give_a_point():
    assert bootstrap_interval([0.2] * 7) == pytest.approx((0.2, 0.2))


def test_interval_narrows_like_the_standard_error():
    d = np.random.default_rng(1).normal(0.05, 0.1, size=400)
    lo, hi = bootstrap_interval(d)
    se = d.std() / np.sqrt(d.size)
    assert (hi - lo) == pytest.approx(2 * 1.96 * se, rel=0.1)
    assert lo < d.mean() < hi


def test_only_common_sequences_count():
    a = {"s1": 0.6, "s2": 0.5, "s3": 0.40, "only_a": 0.9}
    b = {"s1": 0.4, "s2": 0.5, "s3": 0.45, "only_b": 0.1}
    d = paired_difference(a, b, "a", "b")
    assert d.n == 3 and d.mean == pytest.approx((0.2 + 0.0 - 0.05) / 3)
    assert (d.wins, d.ties, d.losses) == (1, 1, 1)
    assert d.lo <= d.mean <= d.hi
