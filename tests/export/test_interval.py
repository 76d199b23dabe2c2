"""model.json's interval around the predicted top-1: from errors at picks where measured, else from
held-out residuals; clipped to [0, 1]; absent for a predictor that reports neither."""

import pytest

from export.report import top1_interval

HELDOUT = {"coverage": 0.9, "low": -0.004, "high": 0.005, "heldout_coverage": 0.92, "from": "out-of-fold residuals"}
PICKS = {"coverage": 0.9, "low": -0.009, "high": -0.001, "measured_coverage": 0.8, "from": "picks"}


def test_picks_preferred_over_heldout_residuals():
    iv = top1_interval(0.9, {"rmse": 0.003, "interval": HELDOUT, "at_picks": PICKS})
    assert iv["low"] == pytest.approx(0.891) and iv["high"] == pytest.approx(0.899)
    assert iv["basis"] == "picks" and iv["measured_coverage"] == 0.8 and iv["from"] == "picks"
    iv = top1_interval(0.9, {"interval": HELDOUT})
    assert iv["low"] == pytest.approx(0.896) and iv["high"] == pytest.approx(0.905)
    assert iv["basis"] == "random subnets" and iv["measured_coverage"] == 0.92


def test_clipped_and_absent():
    assert top1_interval(0.998, {"interval": HELDOUT})["high"] == 1.0
    assert top1_interval(0.9, {"rmse": 0.003}) is None and top1_interval(None, {"interval": HELDOUT}) is None
    assert top1_interval(0.9, None) is None
