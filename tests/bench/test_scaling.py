"""``tenfold bench scaling``: the ring all-reduce model by hand, gradient bytes, the cluster
helpers, and the quick run (2 MultiWorkerMirroredStrategy processes on 127.0.0.1; slow)."""

import json

import keras
import numpy as np
import pytest

from tenfold.bench import BenchContext, load_all, run_benchmark, scaling


@pytest.mark.parametrize(
    ("nbytes", "workers", "gbps", "seconds"),
    [
        (100e6, 2, 10, 0.08),  # 2·1/2 · 100e6 B · 8 b/B ÷ 10e9 b/s
        (100e6, 8, 100, 0.014),  # 2·7/8 · 8e8 b ÷ 1e11 b/s
        (102_334_368, 64, 10, 0.1611766296),  # ResNet50's float32 gradient: 1.96875 · 818,674,944 b ÷ 1e10
        (5e9, 1, 10, 0.0),  # one worker sends nothing
    ],
)
def test_ring_allreduce_matches_hand_computation(nbytes, workers, gbps, seconds):
    assert scaling.ring_allreduce_seconds(nbytes, workers, gbps) == pytest.approx(seconds, rel=1e-12, abs=0)


def test_ring_allreduce_approaches_twice_the_bytes():
    one_way = 100e6 * 8 / 10e9
    times = [scaling.ring_allreduce_seconds(100e6, n, 10) for n in (2, 8, 64, 4096)]
    assert times == sorted(times) and times[-1] == pytest.approx(2 * one_way, rel=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nbytes": 1e6, "workers": 0, "gbps": 10}, "workers must be an integer"),
        ({"nbytes": 1e6, "workers": 2.5, "gbps": 10}, "workers must be an integer"),
        ({"nbytes": 1e6, "workers": 2, "gbps": 0}, "gbps must be a number"),
        ({"nbytes": -1, "workers": 2, "gbps": 10}, "nbytes must be a number"),
    ],
)
def test_ring_allreduce_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        scaling.ring_allreduce_seconds(**kwargs)


def test_gradient_bytes_counts_trainable_variables_by_their_dtype():
    model = keras.Sequential([
        keras.Input((3,)),
        keras.layers.Dense(4, dtype="float64"),  # 3·4 + 4 float64 = 128 B
        keras.layers.BatchNormalization(),  # gamma, beta 2·4 float32 = 32 B; moving stats excluded
        keras.layers.Dense(2),  # 4·2 + 2 float32 = 40 B
    ])
    assert scaling.gradient_bytes(model) == 128 + 32 + 40
    model.layers[-1].trainable = False
    assert scaling.gradient_bytes(model) == 128 + 32


def test_tf_config_and_free_ports():
    ports = scaling.free_ports(3)
    assert len(set(ports)) == 3 and all(0 < p < 65536 for p in ports)
    hosts = [f"127.0.0.1:{p}" for p in ports]
    config = scaling.tf_config(hosts, 2)
    assert config == {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": 2}}
    assert json.loads(json.dumps(config)) == config


def test_comm_table_cells_are_the_formula():
    measured = [{"label": "m", "batch": 4, "gradient_bytes": 100e6, "step_seconds": 0.04}]
    table = scaling._comm_table(measured)
    rows = [ln for ln in table.splitlines() if ln.startswith("| m ")]
    assert len(rows) == len(scaling.LINKS_GBPS)
    assert "| 10 Gb/s | 80 ms (2×) | 140 ms (3.5×) |" in rows[0]  # 0.08 s and 0.14 s over 0.04 s
    assert "| 100 MB | 40 ms (4) | 100 Gb/s | 8 ms (0.2×) |" in rows[1]


@pytest.mark.slow
def test_scaling_quick(tmp_path):
    load_all()
    result = run_benchmark("scaling", BenchContext(quick=True, out_dir=tmp_path, log=lambda s: None))
    assert result.command == "tenfold bench scaling --quick"
    steps, examples = result.rows
    assert (steps["a"], steps["b"]) == ("1 worker", "2 workers")
    assert steps["a_median"] > 0 and steps["b_median"] > 0
    # examples/s is steps/s times the same global batch (32) on both
    assert examples["a_median"] == pytest.approx(32 * steps["a_median"])
    assert examples["b_median"] == pytest.approx(32 * steps["b_median"])
    assert not any("goal" in row for row in result.rows)  # report only
    assert any("16 per replica on 2 workers" in n for n in result.notes)
    table = result.tables[0]
    assert sum(ln.startswith("| ") and "Gb/s |" in ln for ln in table.splitlines()) == 3 * 2
    # ResNet50's gradient: 25,583,592 trainable float32 parameters, whatever the input size
    assert "| ResNet50 (32×32) | 102 MB |" in table
    assert (tmp_path / "scaling.png").is_file()
    assert np.isfinite(steps["ratio"]) and steps["ratio"] > 0


def test_notes_are_computed_from_the_measurements():
    spec = {"global_batch": 32, "warmup": 3, "steps": 50, "rounds": 5}
    measured = [
        {"label": "default model (x)", "batch": 32, "parameters": 77_000, "gradient_bytes": 311_000,
         "step_seconds": 0.0249},
        {"label": "big (fast device)", "batch": 8, "parameters": 25_600_000, "gradient_bytes": 100e6,
         "step_seconds": 0.1},
        {"label": "big (slow device)", "batch": 8, "parameters": 25_600_000, "gradient_bytes": 100e6,
         "step_seconds": 20.0},
    ]
    notes = scaling._notes(spec, 40.0, 30.0, 16, measured)
    assert "2 workers run at 0.75× the steps/s of 1 worker at the same global batch (1280 vs 960 examples/s)" in notes[2]
    assert "5 rounds of 50 steps after 3 warm-up steps" in notes[1] and "16 per replica" in notes[1]
    # 2·1/2 · 311,000 B · 8 ÷ 10 Gb/s = 0.2488 ms, 0.01× of 24.9 ms
    assert "0.249 ms per all-reduce on 2 workers over 10 Gb/s, 0.01× its step time" in notes[4]
    # 100 MB: 80 ms at n=2, 140 ms at n=8 and 157.5 ms at n=64 over 10 Gb/s
    fast, slow = notes[5], notes[6]
    assert "at n=64 one all-reduce takes 158 ms over 10 Gb/s and 15.8 ms over 100 Gb/s" in fast
    assert "exceeds this CPU's step time from n=8 (100 ms, batch 8)" in fast
    assert "stays below this CPU's step time up to n=64 (20 s, batch 8)" in slow
