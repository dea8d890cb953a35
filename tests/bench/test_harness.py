"""The bench harness: ratio rows against NumPy, interleaving order, the shared train step
against a float64 reference, figures and their links, RESULTS.md with its summary, and the
facts every result gets from ``run_benchmark``."""

import json
import os
from pathlib import Path

import keras
import numpy as np
import pytest

from tenfold.bench import harness
from tenfold.bench.harness import (
    BenchContext,
    BenchResult,
    Panel,
    at_a_glance,
    batches,
    figure,
    grouped_bars,
    hline,
    interleave,
    line,
    plot_link,
    ratio_row,
    render,
    run_benchmark,
    save_result,
    train_step,
    value_row,
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
    with pytest.raises(ValueError, match="repeats must be an integer >= 1, received 0"):
        interleave({"A": lambda: None}, repeats=0)
    with pytest.raises(TypeError, match="warmup must be an integer"):
        interleave({"A": lambda: None}, warmup="1")


def test_value_row_has_the_ratio_and_no_spread():
    row = value_row("bytes", "Adam", 400.0, "SM3", 2.0, unit="B", repeats=2,
                    goal="≤ 0.01", goal_met=lambda r: r <= 0.01)
    assert row["ratio"] == row["ratio_q25"] == row["ratio_q75"] == pytest.approx(0.005)
    assert row["a_median"] == 400.0 and row["repeats"] == 2 and row["goal_met"] is True
    # the same keys as a ratio row, so RESULTS.md renders both alike
    assert set(row) == set(ratio_row("bytes", {"Adam": [400.0], "SM3": [2.0]}, "Adam", "SM3",
                                      goal="≤ 0.01", goal_met=lambda r: r <= 0.01))


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


def _softmax_cross_entropy_step(x, y, kernel, bias, learning_rate):
    """float64 NumPy: one SGD step on mean softmax cross-entropy of ``x @ kernel + bias``."""
    logits = x @ kernel + bias
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    loss = -np.mean(np.log(p[np.arange(len(y)), y]))
    g = (p - np.eye(kernel.shape[1])[y]) / len(y)
    return loss, kernel - learning_rate * x.T @ g, bias - learning_rate * g.sum(0)


def test_train_step_is_one_sgd_step_of_the_float64_reference():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 5)), rng.integers(0, 3, size=8)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    kernel, bias = (np.asarray(w, "float64") for w in model.get_weights())
    step = train_step(model, keras.optimizers.SGD(0.5))
    loss = float(step(x.astype("float32"), y))
    ref_loss, ref_kernel, ref_bias = _softmax_cross_entropy_step(x, y, kernel, bias, 0.5)
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    np.testing.assert_allclose(model.get_weights()[0], ref_kernel, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.get_weights()[1], ref_bias, rtol=1e-5, atol=1e-6)


def test_train_step_reduces_the_loss():
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(2)])
    step = train_step(model, keras.optimizers.Adam(1e-2))
    losses = [float(step(x, y)) for _ in range(40)]
    assert losses[-1] < 0.5 * losses[0]


def test_batches_are_seeded_epochs_of_a_permutation():
    x, y = np.arange(10, dtype="float32")[:, None], np.arange(10)
    first = batches(x, y, 5, 4, seed=3)
    again = batches(x, y, 5, 4, seed=3)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(first, again))
    labels = np.concatenate([np.asarray(b[1]) for b in first])
    assert sorted(labels[:10].tolist()) == list(range(10))  # the first epoch sees each once
    assert [len(b[1]) for b in first] == [4] * 5


def test_grouped_bars_sit_side_by_side_around_each_category():
    a, b = grouped_bars({"A": [1.0, 2.0], "B": [3.0, 4.0]})
    np.testing.assert_allclose(a.x, [-0.2, 0.8])
    np.testing.assert_allclose(b.x, [0.2, 1.2])
    assert a.style["width"] == pytest.approx(0.4) and (a.label, b.label) == ("A", "B")


def test_figure_writes_a_png_and_save_result_links_it_relative_to_results_md(tmp_path, monkeypatch):
    out = tmp_path / "bench" / "results"
    panel = Panel([line([0, 1, 2], [1.0, 0.5, 0.25], "loss"), hline(0.5, "goal", ls=":")],
                  title="t", xlabel="step", ylabel="loss", yscale="log")
    path = figure(out / "demo.png", [panel, Panel([line([0, 1], [0, 1])], legend=None)], size=(6, 3))
    assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads(save_result(BenchResult("demo", "d", plots=[path]), out).read_text(encoding="utf-8"))
    assert saved["plots"] == ["results/demo.png"]
    assert (out.parent / saved["plots"][0]).is_file()
    # the same link from a path relative to the working directory
    monkeypatch.chdir(tmp_path)
    assert plot_link(os.path.join("bench", "results", "demo.png"), Path("bench/results")) == "results/demo.png"


def test_figure_refuses_an_unknown_series_kind(tmp_path):
    with pytest.raises(ValueError, match="kind must be one of line, bar, scatter, hline, received 'pie'"):
        figure(tmp_path / "x.png", [Panel([harness.Series("pie", [1], [1])])])


def test_run_benchmark_sets_the_facts_of_every_result(monkeypatch):
    def fake(ctx):
        assert ctx.quick and ctx.seed == 0
        return BenchResult(rows=[ratio_row("m", {"A": [1.0], "B": [2.0]}, "A", "B")], notes=["n"])

    fake.description = "what it measures"
    monkeypatch.setattr(harness.result.registry, "get", lambda kind, name: fake)
    result = run_benchmark("demo", BenchContext(quick=True, log=lambda s: None))
    assert (result.name, result.description, result.command) == ("demo", "what it measures", "tenfold bench demo --quick")
    assert result.quick is True and result.seconds >= 0 and result.notes == ["n"]
    assert {"date", "keras", "cpu_count"} <= set(result.env)
