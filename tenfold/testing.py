"""Contract checks every tenfold component passes.

A component is declared with ``@export(path, example=...)``; ``example`` returns a
:class:`ContractExample` telling the checks how to build a fresh instance and what input
it takes. :func:`check_component` then runs, for that object:

1. **config round trip** — ``from_config(get_config())`` gives the same config (JSON-equal);
2. **save/load** — a small model using the component is saved as ``.keras`` and loaded with
   ``safe_mode=True``; outputs are equal and no variable is lost (a Conv subclass that adds
   a ``gain`` weight and forgets to save it fails here);
3. **fit** — one ``model.fit`` epoch in graph mode gives a finite loss;
4. **mixed precision** — under ``mixed_bfloat16`` the component still trains, and a layer's
   output dtype is ``bfloat16`` (unless the example says it stays in float32);
5. **XLA** — the same fit with ``jit_compile=True``.

``tests/test_contract.py`` parametrizes these over every registered object of the
serializable kinds, so no component can skip them.

Example:
>>> import keras, tenfold
>>> from tenfold.testing import ContractExample, check_component
>>> ex = ContractExample(make=lambda: keras.layers.Dense(3), input_shape=(5,))
>>> check_component("layers", ex)  # raises AssertionError on a broken contract
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from tenfold import _validate as v


@dataclass
class ContractExample:
    """How to exercise one component in the contract checks.

    Attributes:
        make: zero-argument callable returning a fresh instance.
        input_shape: per-example input shape (no batch axis) of the test model.
        num_classes: number of integer classes of the test labels.
        batch_size: batch size of the fit step.
        output_dtype_bf16: expected output dtype of a layer under ``mixed_bfloat16``
            (``None`` to skip the dtype assertion, e.g. a layer that stays in float32).
        atol: tolerance of the save/load output comparison.
        build_model: optional ``(component, input_shape, num_classes) -> keras.Model`` for
            components that need a special model (default: a small conv/dense model).
        checks: names of the checks to run (all by default).
    """

    make: Callable[[], Any]
    input_shape: tuple[int, ...] = (8, 8, 1)
    num_classes: int = 4
    batch_size: int = 8
    output_dtype_bf16: str | None = "bfloat16"
    atol: float = 1e-5
    build_model: Callable[[Any, tuple[int, ...], int], keras.Model] | None = None
    checks: tuple[str, ...] = field(
        default=("config", "save_load", "fit", "mixed_bfloat16", "jit_compile")
    )


@contextlib.contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Temporarily set the global Keras dtype policy."""
    old = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(old)


def _data(example: ContractExample, n: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *example.input_shape)).astype("float32")
    y = (np.arange(n) % example.num_classes).astype("int32")
    return x, y


def _default_body(inputs: Any) -> Any:
    x = inputs
    if len(inputs.shape) == 4:
        x = keras.layers.Conv2D(4, 3, padding="same", name="body_conv")(x)
    x = keras.layers.Flatten()(x)
    return keras.layers.Dense(8, activation="relu", name="body_dense")(x)


def _logits(x: Any, num_classes: int) -> Any:
    x = keras.layers.Flatten()(x)
    return keras.layers.Dense(num_classes, dtype="float32", name="logits")(x)


def build_test_model(kind: str, component: Any, example: ContractExample) -> keras.Model:
    """A small compiled model exercising ``component`` of ``kind``."""
    if example.build_model is not None:
        model = example.build_model(component, example.input_shape, example.num_classes)
    else:
        inputs = keras.Input(example.input_shape)
        if kind == "layers":
            outputs = _logits(component(inputs), example.num_classes)
        else:
            outputs = _logits(_default_body(inputs), example.num_classes)
        model = keras.Model(inputs, outputs)
    return model


def compile_test_model(
    kind: str, model: keras.Model, component: Any, *, jit_compile: bool | str = False
) -> None:
    optimizer: Any = keras.optimizers.Adam(1e-3)
    loss: Any = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    metrics: list[Any] = []
    if kind == "optimizers":
        optimizer = component
    elif kind == "schedules":
        optimizer = keras.optimizers.SGD(learning_rate=component)
    elif kind == "losses":
        loss = component
    elif kind == "metrics":
        metrics = [component]
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics, jit_compile=jit_compile)


def _json(obj: Any) -> str:
    return json.dumps(keras.saving.serialize_keras_object(obj), sort_keys=True, default=str)


def check_config(kind: str, example: ContractExample) -> None:
    """``from_config(get_config())`` reproduces the config exactly."""
    obj = example.make()
    config = obj.get_config()
    json.dumps(config)  # configs hold only JSON types
    clone = type(obj).from_config(config)
    assert _json(clone) == _json(obj), (
        f"{type(obj).__name__}: config round trip changed the config:\n"
        f"{_json(obj)}\n!=\n{_json(clone)}"
    )
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(obj))
    assert type(restored) is type(obj), f"registered deserialization gave {type(restored)}"


def _fit(kind: str, example: ContractExample, *, jit_compile: bool | str = False) -> tuple[keras.Model, Any]:
    component = example.make()
    model = build_test_model(kind, component, example)
    compile_test_model(kind, model, component, jit_compile=jit_compile)
    x, y = _data(example)
    history = model.fit(x, y, batch_size=example.batch_size, epochs=1, verbose=0)
    loss = history.history["loss"][-1]
    assert np.isfinite(loss), f"{type(component).__name__}: fit gave a non-finite loss {loss}"
    return model, component


def check_fit(kind: str, example: ContractExample) -> None:
    """One fit epoch in graph mode gives a finite loss."""
    _fit(kind, example)


def check_jit_compile(kind: str, example: ContractExample) -> None:
    """One fit epoch with ``jit_compile=True`` gives a finite loss."""
    _fit(kind, example, jit_compile=True)


def check_mixed_bfloat16(kind: str, example: ContractExample) -> None:
    """Trains under ``mixed_bfloat16``; a layer outputs its expected dtype."""
    with dtype_policy("mixed_bfloat16"):
        model, component = _fit(kind, example)
        if kind == "layers" and example.output_dtype_bf16 is not None:
            x, _ = _data(example, n=2)
            out = component(keras.ops.convert_to_tensor(x))
            got = keras.backend.standardize_dtype(out.dtype)
            assert got == example.output_dtype_bf16, (
                f"{type(component).__name__} outputs {got} under mixed_bfloat16, "
                f"expected {example.output_dtype_bf16}"
            )


def check_save_load(kind: str, example: ContractExample) -> None:
    """Save as .keras, reload with safe_mode on: same outputs, same variables."""
    model, component = _fit(kind, example)
    x, _ = _data(example, n=8, seed=1)
    expected = model.predict(x, verbose=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
    got = loaded.predict(x, verbose=0)
    np.testing.assert_allclose(got, expected, atol=example.atol, rtol=example.atol)
    assert len(loaded.weights) == len(model.weights), (
        f"{type(component).__name__}: {len(model.weights)} weights saved, "
        f"{len(loaded.weights)} loaded"
    )
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_allclose(
            np.asarray(b), np.asarray(a), atol=example.atol, err_msg=f"weight {a.path} changed"
        )
    if kind == "optimizers":
        old = [np.asarray(v) for v in model.optimizer.variables]
        new = [np.asarray(v) for v in loaded.optimizer.variables]
        assert len(old) == len(new), f"optimizer state: {len(old)} saved, {len(new)} loaded"
        for a, b in zip(old, new):
            np.testing.assert_allclose(b, a, atol=example.atol)
    if kind == "metrics":
        # a reloaded model builds its compiled metrics lazily, on the first step; evaluate
        # both models on the same data: the metric must come back and give the same values
        x_eval, y_eval = _data(example, n=8, seed=2)
        want = model.evaluate(x_eval, y_eval, verbose=0, return_dict=True)
        got_eval = loaded.evaluate(x_eval, y_eval, verbose=0, return_dict=True)
        assert sorted(got_eval) == sorted(want), f"metric keys changed: {sorted(want)} -> {sorted(got_eval)}"
        for key in want:
            np.testing.assert_allclose(got_eval[key], want[key], atol=example.atol, rtol=example.atol,
                                       err_msg=f"metric {key} differs after reload")
    if kind in ("losses", "metrics", "schedules"):
        # the compiled component itself must come back as the same class and config
        if kind == "losses":
            again = loaded.loss
        elif kind == "schedules":
            again = loaded.optimizer.learning_rate_schedule if hasattr(
                loaded.optimizer, "learning_rate_schedule") else loaded.optimizer._learning_rate
        else:
            again = None
            for m in loaded.metrics:
                for inner in getattr(m, "metrics", [m]):
                    if type(inner) is type(component):
                        again = inner
        assert type(again) is type(component), (
            f"reloaded {kind[:-1]} is {type(again).__name__}, expected {type(component).__name__}"
        )
        assert _json(again) == _json(component)


CHECKS: dict[str, Callable[[str, ContractExample], None]] = {
    "config": check_config,
    "save_load": check_save_load,
    "fit": check_fit,
    "mixed_bfloat16": check_mixed_bfloat16,
    "jit_compile": check_jit_compile,
}


def check_component(kind: str, example: ContractExample, checks: tuple[str, ...] | None = None) -> None:
    """Run every contract check of ``example`` (or the named subset)."""
    for name in checks or example.checks:
        v.choice("checks", name, tuple(CHECKS))
        CHECKS[name](kind, example)


def to_numpy(x: Any, dtype: Any = None) -> np.ndarray:
    """``x`` (a tensor of any backend, a variable or an array) as a NumPy array.

    ``np.asarray`` cannot read a PyTorch tensor that requires grad; Keras' own
    ``keras.ops.convert_to_numpy`` can, on every backend.

    Example:
    >>> to_numpy(keras.ops.ones((2,)), "float64").dtype
    dtype('float64')
    """
    return np.asarray(keras.ops.convert_to_numpy(x), dtype)


def randomize_norms(model: keras.Model, seed: int = 0, *, shift: float = 0.3) -> None:
    """Give every normalization layer of ``model`` non-trivial statistics and affine weights
    (and NF blocks' ``skip_gain`` a value below 1), so that folding or fusing them is visible:
    a freshly built BatchNormalization is the identity, and a fusion that drops it would pass.

    Scales and variances are drawn uniformly from [0.5, 1.5], means and offsets from
    N(0, ``shift``²), skip gains from [0.5, 1].

    Example:
    >>> m = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization()])
    >>> randomize_norms(m, seed=1)
    >>> bool(np.all(to_numpy(m.layers[0].moving_variance) != 1.0))
    True
    """
    shift = v.non_negative("shift", shift)
    rng = np.random.default_rng(seed)
    for var in model.weights:
        if var.path.endswith(("moving_variance", "gamma")):
            var.assign(rng.uniform(0.5, 1.5, var.shape))
        elif var.path.endswith(("moving_mean", "beta")):
            var.assign(rng.normal(scale=shift, size=var.shape))
        elif var.path.endswith("skip_gain"):
            var.assign(rng.uniform(0.5, 1.0, var.shape))
