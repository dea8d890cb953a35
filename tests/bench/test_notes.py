"""Notes and tables of the benchmarks are computed from what was measured (fake measurements
here, so the full-run paths are checked without the full runs)."""

import pytest

from tenfold.bench import optimizers


def _measured(horizon):
    m = {}
    for kind, label in (("mlp", "MLP"), ("cnn", "CNN"), ("transformer", "Transformer")):
        names = list(optimizers.OPTIMIZERS)
        m[label] = {
            "kind": kind, "train_label": f"{label} (train)",
            "state": {n: 0.5 if n in optimizers.MOMENTUM_SLOT else 0.001 for n in names},
            "loss": {n: 2.0 if n == "Adam" else 1.0 for n in names},
            "rates": {n: 0.01 for n in names},
            "curves": {}, "time": {n: 1.0 for n in names}, "adam_step": 0.25,
            "horizon": {"Adam": [2.0, 1.0, 0.5, 0.25], "tenfold Adafactor": [4.0, 1.0, 0.25, 0.0625],
                        "SM3 (momentum 0)": [3.0, 3.0, 3.0, 3.0]} if horizon else None,
        }
    return m


def test_optimizers_notes_carry_the_measured_figures():
    settings = optimizers._Settings.of(quick=False)
    notes = optimizers._notes(_measured(horizon=True), settings)
    assert "a 4096-wide step of Adam takes 0.25 s here" in notes[1]
    assert "tenfold Adafactor keeps 0.001× Adam's state there" in notes[2]
    assert "(0.5× Adam's state)" in notes[3]
    assert "MLP (train) 0.50×, CNN (train) 0.50×, Transformer (train) 0.50×" in notes[3]
    longer = notes[4]
    assert longer.startswith("Longer runs")
    assert "tenfold Adafactor: MLP (train) 2.00 → 0.25" in longer
    assert "SM3 (momentum 0): MLP (train) 1.50 → 12.00" in longer


def test_optimizers_tables_include_the_longer_runs_in_full_mode():
    settings = optimizers._Settings.of(quick=False)
    tables = optimizers._tables(_measured(horizon=True), settings)
    assert len(tables) == 5 and tables[3].startswith("**Longer runs")
    assert "| MLP (train) | tenfold Adafactor | 2.00 | 1.00 | 0.50 | 0.25 |" in tables[3]
    assert len(optimizers._tables(_measured(horizon=False), optimizers._Settings.of(quick=True))) == 4


@pytest.mark.parametrize("quick", [True, False])
def test_optimizers_settings(quick):
    s = optimizers._Settings.of(quick)
    assert s.grids.keys() == optimizers.OPTIMIZERS.keys()
    assert (s.steps, s.width) == ((30, 512) if quick else (80, 4096))
