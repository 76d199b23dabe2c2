"""Pipeline helpers that need no supernet."""

import math

import pytest

from hwofa.pipeline import RETRY_GRID, retry_budget


@pytest.mark.parametrize("measured", [0.1505, 0.151, 0.154, 0.16, 0.2, 0.5])
def test_retry_budget_is_on_the_grid_below_the_scaled_budget(measured):
    budget = 0.15
    nxt = retry_budget(budget, budget, measured, floor=0.01)
    assert nxt < budget and nxt <= budget * budget / measured * 0.97 + 1e-12
    n = round(math.log(nxt / budget) / math.log(RETRY_GRID))
    assert nxt == pytest.approx(budget * RETRY_GRID ** n) and n >= 1


def test_retry_budget_noise_leads_back_to_the_same_budget_and_respects_the_floor():
    assert retry_budget(0.15, 0.15, 0.153, 0.01) == retry_budget(0.15, 0.15, 0.156, 0.01)
    assert retry_budget(0.15, 0.15, 10.0, floor=0.1) == 0.1
