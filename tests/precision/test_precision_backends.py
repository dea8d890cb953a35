"""Backend-neutral precision rules (issue 16 items 2-3), run under TensorFlow, JAX and PyTorch:
jit_compile resolved as Keras resolves it, the candidates and the "auto" rule per device
(Device doubles), float32 outputs of any model under both mixed policies, and the parts that
need TensorFlow saying so."""

import keras
import numpy as np
import pytest

from tenfold.precision import (
    Device,
    candidates,
    choose_policy,
    configure,
    detect_device,
    float32_layers,
    float32_outputs,
    resolve_jit_compile,
    train_step,
)
from tenfold.precision.configure import onednn_enabled
from tenfold.testing import to_numpy

pytestmark = pytest.mark.all_backends
BACKEND = keras.backend.backend()
CPU = Device("cpu", "EPYC", None, ["avx2", "fma"])
H100 = Device("gpu", "H100", (9, 0))


def _dtype(tensor):
    return keras.backend.standardize_dtype(tensor.dtype)


@pytest.mark.parametrize(
    "device,policy",
    [
        (Device("gpu", "H100", (9, 0)), "mixed_bfloat16"),
        (Device("gpu", "A100", (8, 0)), "mixed_bfloat16"),
        (Device("gpu", "T4", (7, 5)), "mixed_float16"),
        (Device("gpu", "V100", (7, 0)), "mixed_float16"),
        (Device("gpu", "P100", (6, 0)), "float32"),  # no float16 tensor cores
        (Device("gpu", "K80", (3, 7)), "float32"),
        (Device("gpu", "unknown", None), "float32"),
        (Device("cpu", "SPR", None, ["avx512f", "amx_bf16"]), "mixed_bfloat16"),
        (Device("cpu", "CPX", None, ["avx512_bf16"]), "mixed_bfloat16"),
        (Device("cpu", "SKX", None, ["avx2", "avx512f"]), "float32"),
    ],
)
def test_auto_rule_by_compute_capability_and_cpu_flags(device, policy):
    chosen, reason = choose_policy(device)
    assert chosen == policy
    assert device.name in reason
    if policy == "mixed_float16":
        assert "loss scaling" in reason


@pytest.mark.parametrize(
    "backend,device,expected,words",
    [
        ("torch", CPU, False, "off on PyTorch"),
        ("torch", H100, False, "torch.compile only with jit_compile=True"),
        ("jax", CPU, True, "every device, here the CPU"),
        ("jax", H100, True, "GPU H100"),
        ("tensorflow", CPU, False, "CPU-only"),
        ("tensorflow", H100, True, "GPU H100"),
    ],
)
def test_auto_jit_compile_per_backend_and_device(backend, device, expected, words):
    xla, reason = resolve_jit_compile("auto", backend=backend, device=device)
    assert xla is expected
    assert words in reason
    if device.kind == "cpu":
        assert "accelerator" not in reason


def test_jit_compile_requests_strategy_grappler_and_unsupported_models():
    assert resolve_jit_compile(True, backend="torch", device=CPU) == (
        True, "jit_compile=True requested (torch.compile)")
    assert resolve_jit_compile(True, backend="jax", device=CPU)[1] == "jit_compile=True requested (XLA)"
    assert resolve_jit_compile(False, backend="jax", device=H100)[0] is False
    xla, reason = resolve_jit_compile("auto", backend="tensorflow", device=H100, in_strategy=True)
    assert xla is False and "tf.distribute" in reason
    assert resolve_jit_compile("auto", backend="tensorflow", device=H100, policy="grappler")[0] is False
    assert resolve_jit_compile("auto", backend="jax", device=H100, supports_jit=False)[0] is False
    xla, reason = resolve_jit_compile(True, backend="jax", device=H100, supports_jit=False)
    assert xla is False and "proceeds with jit_compile=False" in reason


def test_configure_resolves_jit_compile_as_keras_does_on_this_backend():
    report = configure("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse", jit_compile="auto")
    assert report.jit_compile is bool(model.jit_compile)
    assert "accelerator" not in report.xla_reason
    if BACKEND == "torch":
        assert report.jit_compile is False


@pytest.mark.parametrize(
    "device,backend,xla,names,skipped",
    [
        (CPU, "tensorflow", (False, True),
         ["float32", "float32+xla", "mixed_bfloat16", "mixed_bfloat16+xla"], {"mixed_float16", "grappler"}),
        (Device("cpu", "SPR", None, ["avx512f", "amx_bf16"]), "tensorflow", (False, True),
         ["float32", "float32+xla", "mixed_bfloat16", "mixed_bfloat16+xla", "grappler"],
         {"grappler+xla", "mixed_float16"}),
        (CPU, "jax", (True,), ["float32+xla", "mixed_bfloat16+xla"], {"mixed_float16"}),
        (CPU, "torch", (False,), ["float32", "mixed_bfloat16"], {"mixed_float16"}),
        (H100, "torch", (False,), ["float32", "mixed_bfloat16", "mixed_float16"], set()),
        (Device("gpu", "T4", (7, 5)), "tensorflow", (False,), ["float32", "mixed_float16"],
         {"mixed_bfloat16", "grappler"}),
        (Device("gpu", "P100", (6, 0)), "jax", (True,), ["float32+xla"],
         {"mixed_bfloat16", "mixed_float16"}),
    ],
)
def test_candidates_per_backend_and_device(device, backend, xla, names, skipped):
    onednn = "avx512f" in device.flags  # TensorFlow's default: oneDNN on with AVX-512
    run, skip = candidates(device, backend, xla, onednn=onednn)
    assert [c.name for c in run] == names
    assert run[0].policy == "float32"  # the reference comes first
    assert {c.name for c, _ in skip} == skipped
    assert all(why for _, why in skip)


def test_detect_device_reads_a_torch_gpu(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(keras.backend, "backend", lambda: "torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "NVIDIA H200")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: (9, 0))
    device = detect_device()
    assert device == Device("gpu", "NVIDIA H200", (9, 0))
    assert choose_policy(device)[0] == "mixed_bfloat16"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert detect_device().kind == "cpu"


# eager MobileNetV2 calls took 58-167 s under JAX on the shared 2-core machine (seconds on TF)
_SLOW_HERE = [pytest.mark.slow] if BACKEND != "tensorflow" else []


@pytest.mark.parametrize("policy", [pytest.param(p, marks=_SLOW_HERE) for p in ("mixed_bfloat16", "mixed_float16")])
def test_float32_outputs_of_a_keras_applications_model(policy, tmp_path):
    configure(policy)
    model = keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), weights=None, classes=10, alpha=0.35, classifier_activation=None)
    x = np.random.default_rng(0).random((2, 32, 32, 3)).astype("float32")
    assert _dtype(model(x)) == policy.split("_")[1]  # half-precision logits before
    assert float32_layers(model) == []
    assert float32_outputs(model) is model
    logits = model(x)
    assert _dtype(logits) == "float32"
    assert float32_layers(model) == ["predictions"]
    assert configure(policy, model=model).float32_layers == ["predictions"]
    assert model.get_layer("Conv1").compute_dtype == policy.split("_")[1]  # the rest unchanged
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    again = loaded(x)
    assert _dtype(again) == "float32"
    np.testing.assert_array_equal(to_numpy(again), to_numpy(logits))


def test_configure_gives_a_functional_and_a_sequential_model_float32_outputs():
    configure("mixed_bfloat16")
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    functional = keras.Model(inputs, [keras.layers.Dense(3)(hidden), keras.layers.Dense(1)(hidden)])
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(3)])
    nested = keras.Sequential([keras.Input((4,)), inner])
    x = np.ones((2, 4), "float32")
    report = configure("mixed_bfloat16", model=functional)
    assert [_dtype(t) for t in functional(x)] == ["float32", "float32"]
    assert len(report.float32_layers) == 2
    configure("mixed_bfloat16", model=nested)
    assert _dtype(nested(x)) == "float32"
    assert inner.layers[-1].compute_dtype == "float32" and inner.layers[0].compute_dtype == "bfloat16"
    # under float32 nothing changes
    configure("float32")
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    assert configure("float32", model=plain).float32_layers == []


class _Residual(keras.layers.Layer):
    """A composite layer, as KerasHub's TransformerEncoder: inputs + dense(norm(inputs))."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.norm, self.dense = keras.layers.LayerNormalization(), keras.layers.Dense(4)

    def call(self, x):
        return x + self.dense(self.norm(x))


def test_a_composite_output_layer_computes_in_float32_with_every_layer_inside_it():
    configure("mixed_bfloat16")
    inputs = keras.Input((4,))
    block = _Residual()
    model = keras.Model(inputs, block(keras.layers.Dense(4)(inputs)))
    x = np.random.default_rng(0).random((2, 4)).astype("float32")
    float32_outputs(model)
    out = model(x)  # TensorFlow: float32 inputs + a bfloat16 sublayer's output would not add
    assert _dtype(out) == "float32"
    assert block.norm.compute_dtype == block.dense.compute_dtype == "float32"
    assert model.layers[1].compute_dtype == "bfloat16"  # the rest unchanged
    configure("float32")


def test_float32_outputs_refuses_a_model_without_a_graph():
    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    with pytest.raises(ValueError, match="needs a built Functional or Sequential model.*cast the output"):
        float32_outputs(Sub())
    with pytest.raises(TypeError, match="model must be a keras.Model"):
        float32_outputs("model")


@pytest.mark.skipif(BACKEND == "tensorflow", reason="checks the error on the other backends")
def test_what_needs_tensorflow_says_so():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    with pytest.raises(RuntimeError, match=f"needs the TensorFlow backend.*is '{BACKEND}'"):
        train_step(model, keras.losses.MeanSquaredError(), keras.optimizers.SGD(0.1))
    with pytest.raises(ValueError, match=f"needs the TensorFlow backend.*is '{BACKEND}'"):
        configure("grappler")
    assert keras.config.dtype_policy().name == "float32"  # refused before anything was set


def test_probe_arguments_are_checked():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match=r"needs sample=\(x, y\).*received sample=None"):
        configure("auto", model)
    with pytest.raises(ValueError, match="probe_steps must be"):
        configure("auto", model, (np.ones((2, 3)), np.ones((2, 1))), probe_steps=0)
    with pytest.raises(TypeError, match="model must be a keras.Model or None"):
        configure("auto", "model")
    with pytest.raises(ValueError, match="sample is only used by configure.*policy='float32' and no model"):
        configure("float32", sample=(np.ones((2, 3)), np.ones((2, 1))))
    with pytest.raises(TypeError, match="timer must be None or a callable"):
        configure("float32", timer=3)
    report = configure("auto")
    assert "not measured" in report.reason and report.probe == []


def test_probe_on_this_backend_chooses_float32_when_the_others_are_slower():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
    rng = np.random.default_rng(0)
    sample = rng.normal(size=(16, 6)).astype("float32"), rng.integers(0, 3, 16)
    before = [w.copy() for w in model.get_weights()]

    def timer(name, step):
        step()
        return 1.0 if name.startswith("float32") else 4.0

    jit = False if BACKEND == "tensorflow" else "auto"  # TF's XLA candidates: tests/precision/test_probe.py
    report = configure("auto", model, sample, probe_steps=2, jit_compile=jit, timer=timer)
    measured = [row["name"] for row in report.probe if row["median_s"] is not None]
    expected = {"jax": ["float32+xla", "mixed_bfloat16+xla"]}.get(BACKEND, ["float32", "mixed_bfloat16"])
    if BACKEND == "tensorflow" and onednn_enabled():
        expected.append("grappler")
    assert measured == expected
    assert report.policy == "float32" and keras.config.dtype_policy().name == "float32"
    assert report.xla is (BACKEND == "jax")
    assert report.probe[1]["ratio"] == pytest.approx(0.25) and report.probe[1]["accepted"]
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
