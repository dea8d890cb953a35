"""Small functional models of every shape remat.apply must handle (shared by the tests and
the JAX/PyTorch subprocess checks)."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops


def dag(seed=0):
    """x + y nodes, a squeeze-excite branch, BatchNormalization and Dropout."""
    keras.utils.set_random_seed(seed)
    i = keras.Input((8, 8, 3), name="image")
    h = layers.Conv2D(3, 1, name="c0")(i)
    h = h + i  # a keras.ops node: no .weights
    for b in range(3):
        y = layers.Conv2D(6, 3, padding="same", name=f"b{b}_conv1")(h)
        y = layers.BatchNormalization(momentum=0.5, name=f"b{b}_bn")(y)
        y = ops.relu(y)
        s = layers.GlobalAveragePooling2D(keepdims=True, name=f"b{b}_se_pool")(y)
        s = layers.Dense(6, activation="sigmoid", name=f"b{b}_se")(s)
        y = y * s
        y = layers.Dropout(0.3, seed=b + 1, name=f"b{b}_drop")(y)
        y = layers.Conv2D(3 if b < 2 else 6, 3, padding="same", name=f"b{b}_conv2")(y)
        h = layers.Add(name=f"b{b}_add")([h, y]) if b < 2 else y + layers.Conv2D(6, 1)(h)
    h = layers.GlobalAveragePooling2D(name="pool")(h)
    return keras.Model(i, layers.Dense(4, name="logits")(h), name="dag")


def dag_input(seed=0):
    return np.random.default_rng(seed).normal(size=(4, 8, 8, 3)).astype("float32")


def nested(seed=0):
    """A functional block called twice (shared weights) and a nested Sequential."""
    keras.utils.set_random_seed(seed)
    bi = keras.Input((6,))
    bh = layers.Dense(6, activation="tanh")(bi)
    block = keras.Model(bi, layers.Dense(6)(bh) + bi, name="block")
    tail = keras.Sequential(
        [layers.Dense(8, activation="relu"), layers.BatchNormalization(), layers.Dense(8)],
        name="tail",
    )
    tail.build((None, 6))
    i = keras.Input((6,))
    h = layers.Dense(6, name="stem")(i)
    h = block(h)
    h = block(h)
    h = tail(h)
    return keras.Model(i, layers.Dense(3, name="head")(h), name="nested")


def two_in_two_out(seed=0):
    """Two inputs, two outputs; the second input (a per-example scale) feeds every block."""
    keras.utils.set_random_seed(seed)
    a = keras.Input((10,), name="features")
    scale = keras.Input((1,), name="scale")
    h = layers.Dense(12, name="stem")(a)
    aux = None
    for b in range(4):
        y = layers.Dense(12, activation="relu", name=f"b{b}_d1")(h)
        y = layers.Dense(12, name=f"b{b}_d2")(y)
        h = (h + y) * scale
        if b == 1:
            aux = layers.Dense(2, name="aux")(h)
    return keras.Model({"features": a, "scale": scale},
                       {"main": layers.Dense(3, name="main")(h), "aux": aux}, name="two")


def two_inputs(seed=0):
    rng = np.random.default_rng(seed)
    return {"features": rng.normal(size=(5, 10)).astype("float32"),
            "scale": rng.uniform(0.5, 1.5, size=(5, 1)).astype("float32")}


def encoder(num_layers=3, d=16, heads=2, seq=8, vocab=20, dropout=0.1, seed=0):
    """A post-LN transformer encoder of MultiHeadAttention blocks with a padding mask input
    (turned into an attention mask by keras.ops nodes, a side tensor of every block)."""
    keras.utils.set_random_seed(seed)
    tokens = keras.Input((seq,), dtype="int32", name="tokens")
    mask_in = keras.Input((seq,), dtype="int32", name="padding_mask")
    attention_mask = ops.cast(ops.expand_dims(mask_in, 1), "bool")
    h = layers.Embedding(vocab, d, name="embed")(tokens)
    for b in range(num_layers):
        a = layers.MultiHeadAttention(heads, d // heads, dropout=dropout, name=f"b{b}_mha")(
            h, h, attention_mask=attention_mask
        )
        h = layers.LayerNormalization(name=f"b{b}_ln1")(h + a)
        f = layers.Dense(2 * d, activation="gelu", name=f"b{b}_ff1")(h)
        f = layers.Dropout(dropout, seed=b, name=f"b{b}_drop")(f)
        f = layers.Dense(d, name=f"b{b}_ff2")(f)
        h = layers.LayerNormalization(name=f"b{b}_ln2")(h + f)
    pooled = layers.GlobalAveragePooling1D(name="pool")(h)
    return keras.Model([tokens, mask_in], layers.Dense(3, name="cls")(pooled), name="encoder")


def encoder_inputs(batch=3, seq=8, vocab=20, seed=0):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, vocab, size=(batch, seq)).astype("int32")
    mask = np.ones((batch, seq), "int32")
    mask[0, seq // 2:] = 0
    return [tokens, mask]
