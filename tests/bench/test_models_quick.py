"""``tenfold bench models --quick`` produces its rows, tables, notes and plot (slow: several
minutes on 2 cores). The numbers are measurements; what is asserted is what cannot depend on
the machine: every model is measured, the BatchNormalization counts of the goals, the exact
fold, and the deployed ACNet ResNet50 being the plain deployed ResNet50."""

import re

import numpy as np
import pytest

from tenfold.bench import BenchContext, load_all, run_benchmark


@pytest.mark.slow
def test_models_quick(tmp_path):
    load_all()
    result = run_benchmark("models", BenchContext(quick=True, out_dir=tmp_path, log=lambda s: None))
    assert result.command == "tenfold bench models --quick"
    rows = {row["metric"]: row for row in result.rows}
    assert all(np.isfinite(row["ratio"]) and row["ratio"] >= 0 for row in result.rows)
    labels = {metric.split(": ")[0] for metric in rows if "converted to ACNet" not in metric}
    assert {"ResNet50", "MobileNetV2", "EfficientNetB0", "ConvNeXtTiny"} <= labels
    assert any(label.startswith("encoder (2×MHA") for label in labels)
    for name, count in (("ResNet50", 53), ("MobileNetV2", 52), ("EfficientNetB0", 49)):
        folded = rows[f"{name}: BatchNormalization layers folded by deploy"]
        assert (folded["a_median"], folded["b_median"], folded["goal_met"]) == (count, count, True)
        assert rows[f"{name}: deployed vs unfused, max relative difference (÷ 1e-5)"]["goal_met"]
    keras_hub = [label for label in labels if label.startswith("KerasHub")]
    try:
        import keras_hub as _  # noqa: F401
        assert len(keras_hub) == 2
    except ImportError:
        assert not keras_hub and any("pip install --no-deps keras-hub" in n for n in result.notes)
    assert "| layer classes of the two deployed models equal | True |" in result.tables[1]
    counts = re.search(r"\| ([\d,]+) → ([\d,]+) \(([\d,]+)\) \|", result.tables[1]).groups()
    assert counts[1] == counts[2] and counts[0] != counts[1]  # deployed ACNet: the plain ResNet50's parameters
    sqrt = [row for metric, row in rows.items() if "peak memory, remat sqrt" in metric]
    assert len(sqrt) == len(labels) and all(row["unit"] == "MiB" for row in sqrt)
    assert (tmp_path / "models.png").is_file() and len(result.notes) >= 4
