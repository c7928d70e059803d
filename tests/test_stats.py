"""Mean, sd and the t-based 95% CI over repeats, checked against figures worked out by hand."""
from __future__ import annotations

import math

import pytest

from taskclock.runtime.stats import spread, t_quantile


def test_three_repeats_by_hand():
    result = spread([1.0, 2.0, 3.0])  # mean 2, sd 1, t(0.975, 2 dof) = 4.303
    assert result is not None
    assert (result.n, result.mean, result.sd) == (3, 2.0, 1.0)
    assert result.ci95 == pytest.approx(4.303 / math.sqrt(3))
    assert (result.low, result.high) == pytest.approx((2 - 4.303 / math.sqrt(3), 2 + 4.303 / math.sqrt(3)))


def test_one_value_has_no_spread_and_none_has_no_figure():
    one = spread([5.0])
    assert one is not None and one.mean == 5.0 and one.sd is None and one.ci95 is None and one.low is None
    assert spread([]) is None


def test_t_quantiles_approach_the_normal():
    assert t_quantile(1) == 12.706 and t_quantile(10) == 2.228
    assert t_quantile(500) == 1.960
