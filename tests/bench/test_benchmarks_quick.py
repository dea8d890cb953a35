"""Every benchmark's ``--quick`` run produces its rows, notes and plots (slow: 1-2 min each).

The full runs write ``benchmarks/results``; these smoke runs write to a temporary folder and
check the structure the full runs rely on (the numbers themselves are measurements, not
assertions).
"""

import numpy as np
import pytest

from tenfold.bench import BenchContext, load_all, run_benchmark


def _run(name, tmp_path):
    load_all()
    result = run_benchmark(name, BenchContext(quick=True, out_dir=tmp_path, log=lambda s: None))
    assert result.name == name and result.command == f"tenfold bench {name} --quick"
    assert all(np.isfinite(row["ratio"]) for row in result.rows if "ratio" in row)
    return result


def _metrics(result):
    return [row["metric"] for row in result.rows]


@pytest.mark.slow
def test_optimizers_quick(tmp_path):
    result = _run("optimizers", tmp_path)
    metrics = _metrics(result)
    assert sum(m.startswith("state bytes") for m in metrics) == 6  # 2 per model
    assert sum(m.startswith("final loss after 30 steps") for m in metrics) == 6
    assert sum(m.startswith("step time") for m in metrics) == 3
    assert any("Best learning rate" in t for t in result.tables)
    assert all(np.isfinite(row["ratio"]) and row["ratio"] > 0 for row in result.rows)
    assert (tmp_path / "optimizers_state.png").is_file() and (tmp_path / "optimizers_loss.png").is_file()
    # the momentum note is computed from the loss table: one ratio per model, none typed
    momentum = next(n for n in result.notes if "With momentum, Adafactor's 30-step loss" in n)
    assert momentum.count("×") >= 4 and "Transformer block d=256" in momentum
    assert not any(n.startswith("Longer runs") for n in result.notes)  # quick: no longer runs


@pytest.mark.slow
def test_momentum_quick(tmp_path):
    result = _run("momentum", tmp_path)
    metrics = _metrics(result)
    # 6 per model (ResNet50, MobileNetV2, the MHA encoder), 6 per loss-run model
    assert sum(m.startswith("state bytes") for m in metrics) == 18
    assert sum(m.startswith("final loss after 60 steps (6 warm-up)") for m in metrics) == 12
    goals = {(row["metric"], row["b"]): row["goal"] for row in result.rows if row.get("goal")}
    assert goals[("state bytes, ResNet50 64×64", "Adafactor (β₁ 0.9, bfloat16)")] == "≤ 0.26"
    assert goals[("state bytes, encoder 6×MHA d=256", "Adafactor (β₁ none)")] == "≤ 0.02"
    state = {row["b"]: row["ratio"] for row in result.rows if row["metric"] == "state bytes, encoder 6×MHA d=256"}
    # bfloat16 momentum: 2 bytes an entry instead of 4, the second moment unchanged
    assert state["Adafactor (β₁ 0.9, bfloat16)"] == pytest.approx(
        state["Adafactor (β₁ none)"] + (state["Adafactor (β₁ 0.9, float32)"] - state["Adafactor (β₁ none)"]) / 2,
        rel=1e-6)
    assert any(n.startswith("bfloat16 momentum halves the momentum slot") for n in result.notes)
    assert (tmp_path / "momentum.png").is_file()


@pytest.mark.slow
def test_echo_quick(tmp_path):
    result = _run("echo", tmp_path)
    assert [row["b"] for row in result.rows] == ["e=2", "e=4"]
    assert all(row["goal"].startswith(">= ") for row in result.rows)
    assert [n.split(":")[0] for n in result.notes[1:]] == ["echo 2", "echo 4"]
    assert (tmp_path / "echo.png").is_file()


@pytest.mark.slow
def test_remat_quick(tmp_path):
    result = _run("remat", tmp_path)
    assert _metrics(result) == [
        "MLP 16×256: peak memory, sqrt policy (k=4)", "MLP 16×256: step time, sqrt policy (k=4)",
        "ResNet 9 blocks: peak memory, sqrt policy (k=3)", "ResNet 9 blocks: step time, sqrt policy (k=3)",
    ]
    assert all(row["a_median"] > row["b_median"] for row in result.rows[::2])  # recomputing saves memory
    assert len(result.notes) == 2 and (tmp_path / "remat.png").is_file()


@pytest.mark.slow
def test_schedules_quick(tmp_path):
    result = _run("schedules", tmp_path)
    labels = [row["b"] for row in result.rows]
    assert labels == ["CLR, step 2 epochs", "CLR, step 2 epochs", "CLR, step 4 epochs", "CLR, step 4 epochs"]
    assert "CLR step 2 epochs" in result.tables[0] and "CLR step 4 epochs" in result.tables[0]
    assert (tmp_path / "schedules.png").is_file()


@pytest.mark.slow
def test_longtail_quick(tmp_path):
    result = _run("longtail", tmp_path)
    metrics = _metrics(result)
    assert "IF 100 few-shot accuracy, LDAM-DRW" in metrics
    drw = [n for n in result.notes if n.startswith("DRW switch point chosen on validation")]
    assert drw and any(f in drw[0] for f in ("0.5", "0.65", "0.8"))
    assert (tmp_path / "longtail.png").is_file()


@pytest.mark.slow
def test_precision_quick(tmp_path):
    result = _run("precision", tmp_path)
    metrics = _metrics(result)
    assert "ResNet float32: examples/s, fused vs Keras BatchNormalization" in metrics
    assert "ResNet mixed_bfloat16: examples/s, fused vs Keras BatchNormalization" in metrics
    for row in result.rows:
        assert row["ratio"] > 0
        if row.get("goal"):  # the 1.5x goal judges bf16 without XLA only
            assert row["b"] in ("mixed_bfloat16", "grappler"), row
