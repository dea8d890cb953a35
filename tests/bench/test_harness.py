"""The bench harness: ratio rows against NumPy, interleaving order, RESULTS.md with its summary."""

import json

import numpy as np
import pytest

from tenfold.bench.harness import (
    BenchResult,
    at_a_glance,
    interleave,
    ratio_row,
    render,
    save_result,
)


def test_ratio_row_is_the_median_of_per_round_ratios():
    a, b = [1.0, 2.0, 4.0, 8.0], [1.5, 1.0, 6.0, 4.0]
    row = ratio_row("m", {"A": a, "B": b}, "A", "B", goal="≤ 1", goal_met=lambda r: r <= 1)
    per_round = np.array(b) / np.array(a)  # 1.5, 0.5, 1.5, 0.5
    assert row["ratio"] == pytest.approx(np.median(per_round))
    assert row["ratio_q25"] == pytest.approx(np.percentile(per_round, 25))
    assert row["ratio_q75"] == pytest.approx(np.percentile(per_round, 75))
    # the ratio of medians would differ (2.5 / 3 = 0.83): per-round pairing is what is reported
    assert row["ratio"] != pytest.approx(np.median(b) / np.median(a))
    assert row["goal_met"] is True and row["repeats"] == 4


def test_ratio_row_without_goal_has_no_verdict():
    row = ratio_row("m", {"A": [2.0], "B": [3.0]}, "A", "B")
    assert "goal_met" not in row and row["ratio"] == pytest.approx(1.5)


def test_interleave_alternates_after_warmup_and_records_returned_values():
    calls = []
    samples = interleave({"A": lambda: calls.append("A"), "B": lambda: calls.append("B") or 7.0},
                         repeats=3, warmup=1)
    assert calls == ["A", "B"] * 4
    assert samples["B"] == [7.0, 7.0, 7.0] and len(samples["A"]) == 3
    assert all(s >= 0 for s in samples["A"])
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        interleave({"A": lambda: None}, repeats=0)


def _row(metric, ratio, met):
    return {"metric": metric, "a": "A", "b": "B", "a_median": 1.0, "b_median": ratio,
            "unit": "s", "ratio": ratio, "ratio_q25": ratio, "ratio_q75": ratio,
            "goal": "≤ 1", "goal_met": met}


def test_at_a_glance_counts_goal_rows_and_lists_the_unmet():
    results = [
        {"name": "fast", "rows": [_row("speed", 0.5, True), _row("memory", 1.3, False)]},
        {"name": "report", "rows": [{**_row("x", 1.0, None)}], "quick": True},
    ]
    lines = at_a_glance(results).splitlines()
    assert lines[2] == "| [fast](#fast) | 1 of 2 | memory, B: **1.300** (goal ≤ 1) |"
    assert lines[3] == "| [report](#report) (quick) | – | – |"


def test_save_result_writes_json_and_results_md_with_summary(tmp_path):
    out = tmp_path / "results"
    plot = out / "p.png"
    out.mkdir()
    plot.write_bytes(b"png")
    result = BenchResult("demo", "what it measures", rows=[_row("speed", 2.0, False)],
                         notes=["a note"], plots=[str(plot)])
    path = save_result(result, out)
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["plots"] == ["results/p.png"]  # relative to RESULTS.md
    md = (tmp_path / "RESULTS.md").read_text(encoding="utf-8")
    assert "## At a glance" in md and "| [demo](#demo) | 0 of 1 | speed, B: **2.000**" in md
    assert md.index("## At a glance") < md.index("## demo")
    assert render(saved) in md and "- a note" in md and "![demo](results/p.png)" in md
