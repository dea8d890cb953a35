"""``tenfold bench auto``: rows from the re-measured speeds (no timing asserted)."""

from tenfold.bench.auto import _rows, _table


def _measured(chosen, verify):
    return {"label": "m", "chosen": chosen, "reason": "r", "probe": {}, "verify": verify}


def test_a_choice_slower_than_float32_and_the_fastest_fails_both_goals():
    rows = _rows(_measured("mixed_bfloat16", {"float32": 10.0, "mixed_bfloat16": 9.0, "float32+xla": 12.0}))
    vs_f32, vs_fastest = rows
    assert vs_f32["a"] == "float32" and abs(vs_f32["ratio"] - 0.9) < 1e-9 and vs_f32["goal_met"] is False
    assert vs_fastest["a"] == "float32+xla" and abs(vs_fastest["ratio"] - 0.75) < 1e-9
    assert vs_fastest["goal_met"] is False


def test_the_fastest_choice_meets_both_goals_and_is_bold_in_the_table():
    m = _measured("float32+xla", {"float32": 10.0, "float32+xla": 12.0})
    assert [r["goal_met"] for r in _rows(m)] == [True, True]
    assert "**1.20**" in _table([m])
