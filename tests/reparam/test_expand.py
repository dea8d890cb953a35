"""deploy's expanders: KerasHub layers as plain Keras layers (issue #14)."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from tenfold.reparam import deploy
from tenfold.reparam.expand import EXPANDERS, expander_for

keras_hub = pytest.importorskip("keras_hub")


def randomize_all(model, seed):
    """Every variable to N(0, 0.5²) (norm scales included), so no weight is at its initial value."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        v.assign(rng.normal(0.0, 0.5, size=v.shape).astype(keras.backend.standardize_dtype(v.dtype)))


def relative(a, b):
    a, b = np.asarray(a, "float64"), np.asarray(b, "float64")
    assert a.shape == b.shape
    return float(np.max(np.abs(a - b)) / np.max(np.abs(a)))


def layer_classes(model):
    return {type(layer) for layer in model._flatten_layers(include_self=False, recursive=True)}


def names_no_keras_hub(model):
    return "keras_hub" not in json.dumps(model.get_config()) and all(
        cls.__module__.split(".")[0] == "keras" for cls in layer_classes(model)
    )


def small_bert():
    model = keras_hub.models.BertBackbone(
        vocabulary_size=50, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32,
        max_sequence_length=16,
    )
    randomize_all(model, seed=14)
    return model


def bert_inputs(batch=3, length=16, seed=14):
    rng = np.random.default_rng(seed)
    mask = np.ones((batch, length), "int32")
    mask[0, length // 2:] = 0
    mask[1, length - 3:] = 0
    return {
        "token_ids": rng.integers(0, 50, size=(batch, length)).astype("int32"),
        "segment_ids": rng.integers(0, 2, size=(batch, length)).astype("int32"),
        "padding_mask": mask,
    }


def test_registry_keys_exact_keras_hub_classes():
    assert {("keras_hub", "TransformerEncoder"), ("keras_hub", "PositionEmbedding"),
            ("keras_hub", "ReversibleEmbedding")} <= set(EXPANDERS)
    assert expander_for(keras.layers.Dense(2)) is None

    class Sub(keras_hub.layers.TransformerEncoder):  # a subclass may change call: not matched
        pass

    assert expander_for(Sub(4, 2)) is None


@pytest.mark.parametrize("normalize_first", [False, True])
@pytest.mark.parametrize("masks", ["padding", "padding+attention", "none"])
def test_transformer_encoder_expands_exactly(normalize_first, masks):
    x_in = keras.Input((None, 16), name="x")
    pad_in = keras.Input((None,), dtype="int32", name="padding_mask")
    att_in = keras.Input((None, None), dtype="int32", name="attention_mask")
    layer = keras_hub.layers.TransformerEncoder(
        32, 2, activation=keras_hub.src.utils.keras_utils.gelu_approximate, layer_norm_epsilon=1e-6,
        normalize_first=normalize_first, dropout=0.3, name="encoder",
    )
    kwargs = {}
    if "padding" in masks:
        kwargs["padding_mask"] = pad_in
    if "attention" in masks:
        kwargs["attention_mask"] = att_in
    model = keras.Model([x_in, pad_in, att_in], layer(x_in, **kwargs))
    randomize_all(model, seed=3)
    fused = deploy(model)
    assert names_no_keras_hub(fused)
    assert sum(isinstance(la, keras.layers.MultiHeadAttention) for la in fused.layers) == 1
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 7, 16)).astype("float32")
    pad = np.ones((4, 7), "int32")
    pad[1, 4:] = 0
    pad[2, 1:] = 0
    att = (rng.uniform(size=(4, 7, 7)) > 0.3).astype("int32")
    att[:, :, 0] = 1
    a = model([x, pad, att], training=False)
    b = fused([x, pad, att], training=False)
    assert relative(a, b) <= 1e-5
    if masks != "none":  # the masks matter: ignoring them changes the output
        unmasked = keras.Model([x_in, pad_in, att_in], layer(x_in))
        assert relative(a, unmasked([x, pad, att], training=False)) > 1e-3


def test_position_embedding_expands_for_any_sequence_length():
    inputs = keras.Input((None, 8))
    layer = keras_hub.layers.PositionEmbedding(sequence_length=10, name="positions")
    model = keras.Model(inputs, layer(inputs))
    randomize_all(model, seed=4)
    fused = deploy(model)
    assert names_no_keras_hub(fused)
    table = np.asarray(layer.position_embeddings)
    for length in (1, 6, 10):
        x = np.random.default_rng(length).normal(size=(3, length, 8)).astype("float32")
        y = np.asarray(fused(x))
        np.testing.assert_array_equal(y, np.broadcast_to(table[:length], (3, length, 8)))
        np.testing.assert_array_equal(y, np.asarray(model(x)))


def test_reversible_embedding_forward_is_an_embedding():
    inputs = keras.Input((None,), dtype="int32")
    layer = keras_hub.layers.ReversibleEmbedding(20, 6, name="tokens")
    model = keras.Model(inputs, layer(inputs))
    randomize_all(model, seed=5)
    fused = deploy(model)
    assert type(fused.get_layer("tokens")) is keras.layers.Embedding
    ids = np.random.default_rng(5).integers(0, 20, size=(3, 9)).astype("int32")
    np.testing.assert_array_equal(np.asarray(fused(ids)), np.asarray(layer.embeddings)[ids])


def test_reversible_embedding_with_a_reverse_call_is_copied():
    inputs = keras.Input((None,), dtype="int32")
    layer = keras.layers.ReversibleEmbedding(20, 6, name="tokens")
    model = keras.Model(inputs, layer(layer(inputs), reverse=True))
    randomize_all(model, seed=6)
    fused = deploy(model)
    assert type(fused.get_layer("tokens")) is keras.layers.ReversibleEmbedding
    ids = np.random.default_rng(6).integers(0, 20, size=(2, 5)).astype("int32")
    assert relative(model(ids), fused(ids)) <= 1e-6


def test_bert_backbone_deploys_to_plain_keras_exactly():
    model = small_bert()
    fused = deploy(model)
    assert names_no_keras_hub(fused)
    assert set(fused.input) == {"token_ids", "segment_ids", "padding_mask"}
    xs = bert_inputs()
    a, b = model(xs, training=False), fused(xs, training=False)
    for key in ("sequence_output", "pooled_output"):
        assert relative(a[key], b[key]) <= 1e-5, key
    shorter = bert_inputs(length=9, seed=15)  # dynamic sequence length
    a, b = model(shorter, training=False), fused(shorter, training=False)
    assert relative(a["sequence_output"], b["sequence_output"]) <= 1e-5
    masked_out = dict(shorter, padding_mask=np.ones_like(shorter["padding_mask"]))
    assert relative(b["sequence_output"], fused(masked_out, training=False)["sequence_output"]) > 1e-3


def test_deployed_bert_loads_with_keras_alone(tmp_path):
    model = small_bert()
    fused = deploy(model)
    fused.save(tmp_path / "bert.keras")
    xs = bert_inputs()
    np.savez(tmp_path / "x.npz", **xs)
    script = textwrap.dedent(
        f"""
        import sys, numpy as np, keras
        model = keras.saving.load_model({str(tmp_path / "bert.keras")!r}, safe_mode=True)
        xs = dict(np.load({str(tmp_path / "x.npz")!r}))
        ys = model(xs, training=False)
        np.savez({str(tmp_path / "y.npz")!r}, **{{k: np.asarray(v) for k, v in ys.items()}})
        loaded = [name for name in sys.modules if name.startswith(("tenfold", "keras_hub"))]
        assert not loaded, f"imported {{loaded[:3]}}"
        """
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ys = np.load(tmp_path / "y.npz")
    reference = model(xs, training=False)
    for key in ("sequence_output", "pooled_output"):
        assert relative(reference[key], ys[key]) <= 1e-5, key
