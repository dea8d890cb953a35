"""The input benchmark's goal rows: R sized against 2, and equal-time accuracy that counts
only when the e = 1 run learned (above twice chance)."""

import numpy as np
import pytest

from tenfold.bench import input as bench


def test_r_row_is_memory_over_pipeline_with_goal_two():
    samples = {"e=1": [4.0, 5.0, 6.0], "memory": [9.0, 10.0, 11.0]}
    row = bench._r_row(samples)
    assert row["ratio"] == pytest.approx(10.0 / 5.0) and row["goal_met"]
    row = bench._r_row({"e=1": [5.0], "memory": [5.8]})
    assert row["ratio"] == pytest.approx(1.16) and not row["goal_met"]


@pytest.mark.parametrize("plain, echoed, met", [
    (0.60, 0.595, True),   # learned, within one point
    (0.60, 0.58, False),   # learned, two points lower
    (0.104, 0.104, False),  # e = 1 at chance (10 classes): the comparison says nothing
])
def test_budget_rows_need_a_model_that_learned(plain, echoed, met):
    used = {1: (365, 11680, plain), 2: (427, 6832, echoed), 4: (448, 3584, echoed)}
    rows = bench._budget_rows(used, num_classes=10)
    assert [r["b"] for r in rows] == ["e=2", "e=4"]
    assert all(r["goal_met"] is met for r in rows)
    assert all(np.isclose(r["ratio"], echoed / plain) for r in rows)
    assert ("at chance" in rows[0]["metric"]) is (plain < 0.2)
