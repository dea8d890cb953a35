"""configure("auto", model, sample): the probe times every candidate, interleaved, and keeps
the fastest within the loss tolerance; the timer is a test double, never a sleep."""

import json
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tenfold.precision import configure, probe
from tenfold.precision.configure import onednn_enabled
from tenfold.train.build import PRECISION_FILE, build, probed_precision
from tenfold.train.recipe import load_recipe
from tenfold.train.run import run

GRAPPLER = ["grappler"] if onednn_enabled() else []  # a candidate where TensorFlow runs oneDNN
REWRITES = ("auto_mixed_precision", "auto_mixed_precision_onednn_bfloat16", "auto_mixed_precision_mkl")


@pytest.fixture(autouse=True)
def _restore_grappler():
    yield
    tf.config.optimizer.set_experimental_options({k: False for k in REWRITES})
    configure("float32", jit_compile=False)


def _model_and_batch():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(4)(hidden))
    rng = np.random.default_rng(0)
    return model, (rng.normal(size=(32, 8)).astype("float32"), rng.integers(0, 4, 32))


def _fixed(seconds, order):
    """A timer double: runs the step (so the loss is real) and returns a set time."""
    def timer(name, step):
        order.append(name)
        step()
        return seconds.get(name, 1.0)
    return timer


def test_float32_is_chosen_when_every_other_candidate_is_made_slower():
    model, batch = _model_and_batch()
    before = [w.copy() for w in model.get_weights()]
    order = []
    report = configure("auto", model, batch, probe_steps=3, jit_compile="auto",
                       timer=_slow_but_float32(order))
    measured = [row for row in report.probe if row["median_s"] is not None]
    names = [row["name"] for row in measured]
    assert names[0] == "float32" and {"float32+xla", "mixed_bfloat16", "mixed_bfloat16+xla"} <= set(names)
    # interleaved: every round times each candidate once, in turn
    assert order == names * 3
    assert report.policy == "float32" and report.xla is False
    assert keras.config.dtype_policy().name == "float32"
    for row in measured[1:]:
        assert row["ratio"] == pytest.approx(0.5) and row["accepted"]
        assert f"| {row['name']} | 2.0000 | 0.50× |" in report.summary()
    assert "measured: float32 is the fastest" in report.reason
    assert "not run: float16 on a CPU is emulated" in report.summary()
    # the user's model is neither trained nor changed
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not any(tf.config.optimizer.get_experimental_options().get(k) for k in REWRITES)
    json.dumps(report.to_dict())  # goes into metrics.json


def _slow_but_float32(order):
    def timer(name, step):
        order.append(name)
        step()
        return 1.0 if name == "float32" else 2.0
    return timer


def test_a_faster_candidate_is_chosen_and_left_in_force():
    model, batch = _model_and_batch()
    report = configure("auto", model, batch, probe_steps=2, jit_compile=False,
                       timer=_fixed({"mixed_bfloat16": 0.5}, []))
    assert [row["name"] for row in report.probe if row["median_s"] is not None] == ["float32", "mixed_bfloat16", *GRAPPLER]
    assert report.policy == "mixed_bfloat16" and report.keras_policy == "mixed_bfloat16"
    assert keras.config.dtype_policy().name == "mixed_bfloat16"
    assert "mixed_bfloat16 trains at 2.00× float32" in report.reason
    bf16 = report.probe[1]
    assert bf16["ratio"] == pytest.approx(2.0) and bf16["accepted"]
    # same weights and batch: the first-step losses agree to bfloat16 precision, not exactly
    assert bf16["first_loss"] == pytest.approx(report.probe[0]["first_loss"], rel=0.05)
    assert bf16["first_loss"] != report.probe[0]["first_loss"]
    assert report.xla is False and report.xla_reason == "jit_compile=False requested"


def test_a_candidate_within_the_speed_margin_does_not_replace_float32():
    model, batch = _model_and_batch()
    report = configure("auto", model, batch, probe_steps=2, jit_compile=False,
                       timer=_fixed({"mixed_bfloat16": 0.99}, []))
    assert report.policy == "float32"
    assert "no candidate was more than 2% faster" in report.reason


def test_a_candidate_outside_the_loss_tolerance_is_refused(monkeypatch):
    monkeypatch.setattr(probe, "LOSS_RTOL", 0.0)
    monkeypatch.setattr(probe, "LOSS_ATOL", 0.0)  # bfloat16's first loss is not float32's
    model, batch = _model_and_batch()
    report = configure("auto", model, batch, probe_steps=2, jit_compile=False,
                       timer=_fixed({"mixed_bfloat16": 0.1}, []))
    assert report.policy == "float32"
    bf16 = report.probe[1]
    assert bf16["accepted"] is False and "differs from float32's" in bf16["why"]


def test_the_default_timer_reads_the_module_clock(monkeypatch):
    # a clock double that runs 3x slower while the bfloat16 policy is in force
    now = [0.0]

    def clock():
        now[0] += 3.0 if keras.config.dtype_policy().name == "mixed_bfloat16" else 1.0
        return now[0]

    monkeypatch.setattr(probe, "_clock", clock)
    model, batch = _model_and_batch()
    report = configure("auto", model, batch, probe_steps=2, jit_compile=False)
    assert [row["median_s"] for row in report.probe[:2]] == [1.0, 3.0]
    assert report.policy == "float32"


def test_a_compiled_model_is_probed_with_its_loss_and_optimizer_class_and_left_untrained():
    model, (x, _) = _model_and_batch()
    y = np.random.default_rng(1).normal(size=(32, 4)).astype("float32")
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.MeanSquaredError())
    seen = []

    def timer(name, step):
        seen.append(step())
        return 1.0
    report = configure("auto", model, (x, y), probe_steps=2, jit_compile=False, timer=timer)
    mse = float(np.mean((keras.ops.convert_to_numpy(model(x)) - y) ** 2))
    assert report.probe[0]["first_loss"] == pytest.approx(mse, rel=1e-5)  # its own loss, from its weights
    assert int(model.optimizer.iterations) == 0
    assert report.probe[0]["loss"] < report.probe[0]["first_loss"]  # Adam trained the copy


def test_trainer_auto_probes_the_recipe_model_and_records_the_probe(tmp_path):
    recipe = load_recipe("tiny", [
        "train.epochs=1", "train.verbose=0",
        "precision={policy: auto, jit_compile: false, probe_steps: 2}",
    ])
    metrics = run(recipe, tmp_path / "run", force=True, log=lambda s: None)
    facts = metrics["run"]["precision"]
    names = [row["name"] for row in facts["probe"] if row["median_s"] is not None]
    assert names == ["float32", "mixed_bfloat16", *GRAPPLER]
    assert facts["reason"].startswith("measured: ")
    assert facts["policy"] in names
    assert keras.config.dtype_policy().name == facts["keras_policy"]
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())["run"]["precision"]
    assert saved["probe"][0]["name"] == "float32"
    assert "measured: " in (tmp_path / "run" / "report.md").read_text()
    recorded = json.loads((tmp_path / "run" / PRECISION_FILE).read_text())
    assert recorded["policy"] == facts["policy"] and recorded["probe"] == facts["probe"]


def test_a_resumed_build_keeps_the_recorded_choice_without_probing(tmp_path, monkeypatch):
    recipe = load_recipe("tiny", ["train.verbose=0", "precision={policy: auto, jit_compile: false, probe_steps: 2}"])
    out = tmp_path / "run"
    out.mkdir()
    record = {"requested": "auto", "policy": "mixed_bfloat16", "jit_compile": False,
              "reason": "measured: the double's choice", "probe": [{"name": "mixed_bfloat16", "median_s": 0.1}]}
    (out / PRECISION_FILE).write_text(json.dumps(record))

    def no_probe(*args, **kwargs):
        raise AssertionError("probed again")

    monkeypatch.setattr(sys.modules["tenfold.precision.configure"], "probe", no_probe)
    try:
        built = build(recipe, out, log=lambda s: None, resume=True)
        assert built.precision.policy == "mixed_bfloat16" and built.precision.requested == "auto"
        assert "kept from the interrupted run's probe" in built.precision.reason
        assert built.precision.probe == record["probe"]
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
        # an unusable record (another policy name, not JSON) is probed again, not trusted
        (out / PRECISION_FILE).write_text(json.dumps({**record, "policy": "float8"}))
        assert probed_precision(out / PRECISION_FILE) is None
        (out / PRECISION_FILE).write_text("{truncated")
        assert probed_precision(out / PRECISION_FILE) is None
        # a fresh (not resumed) build never reads it
        with pytest.raises(AssertionError, match="probed again"):
            build(recipe, tmp_path / "fresh", log=lambda s: None)
    finally:
        configure("float32", jit_compile=False)


def test_the_grappler_candidate_on_an_avx512_cpu_double(monkeypatch):
    configure_module = sys.modules["tenfold.precision.configure"]
    monkeypatch.setattr(configure_module, "detect_device",
                        lambda: configure_module.Device("cpu", "double", None, ["avx512f"]))
    # where TensorFlow runs oneDNN, as it does by default with AVX-512 (the timer is a double:
    # what the rewrite does to the numbers does not matter here)
    monkeypatch.setattr(configure_module, "onednn_enabled", lambda: True)
    model, batch = _model_and_batch()
    report = configure("auto", model, batch, probe_steps=2,
                       timer=_fixed({"grappler": 0.5}, []))
    assert "grappler" in [row["name"] for row in report.probe if row["median_s"] is not None]
    assert report.policy == "grappler" and report.xla is False
    assert "does not run inside XLA" in report.xla_reason
    options = tf.config.optimizer.get_experimental_options()
    assert options.get("auto_mixed_precision_onednn_bfloat16") is True
    # probing again with the rewrite made slow switches it off again
    report = configure("auto", model, batch, probe_steps=2, jit_compile=False,
                       timer=_fixed({"float32": 0.5}, []))
    assert report.policy == "float32"
    assert not tf.config.optimizer.get_experimental_options().get("auto_mixed_precision_onednn_bfloat16")


def test_a_model_compiled_with_metrics_is_probed_on_its_loss():
    model, batch = _model_and_batch()
    model.compile(optimizer=keras.optimizers.SGD(0.01), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    expected = float(keras.losses.SparseCategoricalCrossentropy(from_logits=True)(batch[1], model(batch[0])))
    report = configure("auto", model, batch, probe_steps=2, jit_compile=False, timer=_fixed({}, []))
    assert report.probe[0]["name"] == "float32"
    np.testing.assert_allclose(report.probe[0]["first_loss"], expected, rtol=1e-5)


def test_a_model_compiled_with_an_unregistered_loss_function_is_probed_with_it():
    # the probe rebuilds the model from its config; a local loss function cannot be
    # deserialized by name, so the clone must not try to (it is compiled with the loss object)
    model, batch = _model_and_batch()

    def halved(y_true, y_pred):
        return 0.5 * keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)

    model.compile(optimizer=keras.optimizers.SGD(0.01), loss=halved)
    expected = float(np.mean(keras.ops.convert_to_numpy(halved(batch[1], model(batch[0])))))
    report = configure("auto", model, batch, probe_steps=2, jit_compile=False, timer=_fixed({}, []))
    np.testing.assert_allclose(report.probe[0]["first_loss"], expected, rtol=1e-5)


def test_a_fast_model_gets_more_rounds_until_float32_has_a_second_of_steps():
    from tenfold.precision import probe as probe_module

    model, batch = _model_and_batch()
    order = []
    # every step "takes" 0.125 s: 3 rounds give 0.375 s, so the probe goes on to 8 rounds
    report = configure("auto", model, batch, probe_steps=3, jit_compile=False,
                       timer=_fixed({"float32": 0.125, "mixed_bfloat16": 0.25, "grappler": 0.25}, order))
    assert probe_module.MIN_TIMED_S == 1.0
    assert [row["steps"] for row in report.probe if row["median_s"] is not None] == [8, 8]
    # and never more than MAX_ROUNDS_FACTOR x probe_steps
    report = configure("auto", model, batch, probe_steps=2, jit_compile=False,
                       timer=_fixed({"float32": 1e-6, "mixed_bfloat16": 2e-6, "grappler": 2e-6}, []))
    assert {row["steps"] for row in report.probe if row["median_s"] is not None} == {2 * probe_module.MAX_ROUNDS_FACTOR}


def _changing(first, later, rounds):
    """A timer double: ``first[name]`` seconds for a candidate's first ``rounds`` steps,
    ``later[name]`` after (default 1.0, 5.0 for the Grappler candidate: out of the way)."""
    calls = {}

    def timer(name, step):
        step()
        calls[name] = calls.get(name, 0) + 1
        table = first if calls[name] <= rounds else later
        return table.get(name, 5.0 if name == "grappler" else 1.0)
    return timer


def test_candidates_within_the_runoff_margin_run_again_and_all_their_steps_decide():
    from tenfold.precision import probe as probe_module

    model, batch = _model_and_batch()
    # 4 rounds: bfloat16 looks 10 % faster; the runoff (8 more rounds) has it 20 % slower
    report = configure("auto", model, batch, probe_steps=4, jit_compile=False,
                       timer=_changing({"mixed_bfloat16": 0.9}, {"mixed_bfloat16": 1.2}, 4))
    assert probe_module.RUNOFF_MARGIN == 0.20 and probe_module.RUNOFF_FACTOR == 2
    rows = {row["name"]: row for row in report.probe if row["median_s"] is not None}
    assert rows["float32"]["steps"] == rows["mixed_bfloat16"]["steps"] == 12
    assert rows["float32"]["runoff"] and rows["mixed_bfloat16"]["runoff"]
    # the median of 4 steps at 0.9 s and 8 at 1.2 s
    assert rows["mixed_bfloat16"]["median_s"] == pytest.approx(1.2)
    assert report.policy == "float32"
    assert "8 more between float32 and mixed_bfloat16 (within 20% of each other)" in report.reason
    assert "| 12 (runoff) |" in report.summary()
    if "grappler" in rows:  # 5x slower: not a contender
        assert rows["grappler"]["steps"] == 4 and not rows["grappler"]["runoff"]


def test_a_clear_winner_or_a_refused_candidate_brings_no_runoff(monkeypatch):
    model, batch = _model_and_batch()
    report = configure("auto", model, batch, probe_steps=3, jit_compile=False,
                       timer=_changing({"mixed_bfloat16": 0.5}, {"mixed_bfloat16": 0.5}, 3))
    assert report.policy == "mixed_bfloat16"
    assert [(r["steps"], r["runoff"]) for r in report.probe if r["median_s"] is not None] == \
        [(3, False)] * (2 + len(GRAPPLER))
    assert "more between" not in report.reason
    # within the margin but outside the loss tolerance: no runoff with it
    monkeypatch.setattr(probe, "LOSS_RTOL", 0.0)
    monkeypatch.setattr(probe, "LOSS_ATOL", 0.0)
    report = configure("auto", model, batch, probe_steps=3, jit_compile=False,
                       timer=_changing({"mixed_bfloat16": 0.95}, {"mixed_bfloat16": 0.95}, 3))
    bf16 = next(r for r in report.probe if r["name"] == "mixed_bfloat16")
    assert not bf16["accepted"] and bf16["steps"] == 3 and not bf16["runoff"]
    assert report.policy == "float32"
