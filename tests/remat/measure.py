"""Peak memory and step time of remat policies against the plain model (not a test: run
``python tests/remat/measure.py [resnet50|encoder ...]``; figures go to docs/recompute.md).

One training-mode gradient step of Σ cross-entropy in a ``tf.function`` (graph mode, and
``--xla`` with ``jit_compile=True``); peak memory from ``tenfold.remat.peak_memory`` (the
CPU allocator), median of 3; step time median of 9 interleaved rounds.
"""

import json
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from tenfold.remat import apply, peak_memory, plan


def resnet50():
    keras.utils.set_random_seed(0)
    model = keras.applications.ResNet50(
        weights=None, input_shape=(64, 64, 3), classes=10, classifier_activation=None
    )
    x = np.random.default_rng(0).uniform(0, 255, size=(16, 64, 64, 3)).astype("float32")
    return model, x, np.arange(16) % 10


def encoder(num_layers=6, d=256, heads=8, seq=128, batch=16, vocab=1000):
    keras.utils.set_random_seed(0)
    tokens = keras.Input((seq,), dtype="int32")
    h = keras.layers.Embedding(vocab, d)(tokens)
    for _ in range(num_layers):
        a = keras.layers.MultiHeadAttention(heads, d // heads, dropout=0.1)(h, h)
        h = keras.layers.LayerNormalization()(h + a)
        f = keras.layers.Dense(4 * d, activation="gelu")(h)
        f = keras.layers.Dense(d)(keras.layers.Dropout(0.1)(f))
        h = keras.layers.LayerNormalization()(h + f)
    out = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling1D()(h))
    model = keras.Model(tokens, out)
    x = np.random.default_rng(0).integers(0, vocab, size=(batch, seq)).astype("int32")
    return model, x, np.arange(batch) % 10


def step_fn(model, jit):
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(jit_compile=jit)
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        return tape.gradient(loss, model.trainable_variables)

    return step


def measure(name, jit=False, policies=("sqrt",), rounds=9):
    model, x, y = {"resnet50": resnet50, "encoder": encoder}[name]()
    x, y = tf.constant(x), tf.constant(y)
    steps = {"plain": step_fn(model, jit)}
    for policy in policies:
        steps[str(policy)] = step_fn(apply(model, policy, batch_size=int(x.shape[0])), jit)
    for step in steps.values():
        step(x, y)
    memory = {k: int(np.median([peak_memory(s, x, y) for _ in range(3)])) for k, s in steps.items()}
    times = {k: [] for k in steps}
    for _ in range(rounds):
        for k, s in steps.items():
            start = time.perf_counter()
            for g in s(x, y):
                getattr(g, "values", g).numpy()
            times[k].append(time.perf_counter() - start)
    row = {"model": name, "xla": jit, "batch": int(x.shape[0])}
    for policy in policies:
        p = plan(model, policy, batch_size=int(x.shape[0]))
        row[str(policy)] = {
            "segments": len(p.segments),
            "estimate_ratio": p.planned_bytes / p.plain_bytes,
            "peak_ratio": memory[str(policy)] / memory["plain"],
            "time_ratio": float(np.median(times[str(policy)]) / np.median(times["plain"])),
        }
    row["plain_peak_mib"] = memory["plain"] / 2**20
    row["peak_mib"] = {k: v / 2**20 for k, v in memory.items()}
    row["median_step_s"] = {k: float(np.median(v)) for k, v in times.items()}
    return row


if __name__ == "__main__":
    names = [a for a in sys.argv[1:] if not a.startswith("--")] or ["resnet50", "encoder"]
    for name in names:
        print(json.dumps(measure(name, jit="--xla" in sys.argv, policies=("sqrt", 2, 8))), flush=True)
