"""AGC on the backend named by KERAS_BACKEND: prints one JSON line of measured errors.

Run by ``test_agc_backends.py`` in a subprocess per backend (Keras picks its backend once
per process). Everything here is compared with float64 NumPy; nothing reads AGC's own
unit axes: the expected axes per layer type are written out below.
"""

import json
import os
import sys

import keras
import numpy as np
from keras import ops

from tenfold.optimizers import AGC, SM3, Adafactor

CLIP, EPS, LR = 0.05, 1e-3, 0.1
# the convention under test, written independently of tenfold: reduced axes by layer type
EXPECTED = {
    "conv/kernel": (0, 1, 2), "dw/kernel": (0, 1),
    "mha/query/kernel": (0,), "mha/key/kernel": (0,), "mha/value/kernel": (0,),
    "mha/attention_output/kernel": (0, 1), "emb/embeddings": (1,), "hidden/kernel": (0,),
}


def np_clip(g, w, axes):
    g, w = np.asarray(g, np.float64), np.asarray(w, np.float64)
    axes = tuple(range(g.ndim)) if axes is None else axes
    wn = np.maximum(np.sqrt((w * w).sum(axes, keepdims=True)), EPS)
    gn = np.sqrt((g * g).sum(axes, keepdims=True))
    return np.where(gn > CLIP * wn, g * CLIP * wn / np.where(gn > 0, gn, 1.0), g)


def np_adam_step(w, g, state, t, lr=LR, b1=0.9, b2=0.999, eps=1e-7):
    m, vv = state
    m = m + (g - m) * (1 - b1)
    vv = vv + (g * g - vv) * (1 - b2)
    alpha = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
    return w - alpha * m / (np.sqrt(vv) + eps), (m, vv)


def model():
    image = keras.Input((8, 8, 3), name="image")
    tokens = keras.Input((5,), dtype="int32", name="tokens")
    x = keras.layers.Conv2D(4, 3, name="conv")(image)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    e = keras.layers.Embedding(20, 16, name="emb")(tokens)
    e = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="mha")(e, e)
    e = keras.layers.GlobalAveragePooling1D()(e)
    h = keras.layers.Dense(6, name="hidden")(keras.layers.Concatenate()([x, e]))
    out = keras.layers.Dense(3, name="classifier")(h)
    return keras.Model([image, tokens], out, name="net")


def expected_axes(path, rank):
    for key, axes in EXPECTED.items():
        if path.endswith(key):
            return axes
    return tuple(range(rank))  # biases, vectors: the whole tensor


def gradients(values, rng):
    out = []
    for w in values:
        scale = rng.choice([1e-3, 3.0], size=w.shape)  # some units above the threshold, some below
        out.append((rng.normal(size=w.shape) * scale * (np.abs(w).mean() + 0.1)).astype("float32"))
    return out


def step(opt, grads, variables):
    """``opt.apply``; on JAX through a jitted ``stateless_apply``, the path ``fit`` takes."""
    grads = [ops.convert_to_tensor(g) for g in grads]
    if keras.backend.backend() != "jax":
        opt.apply(grads, variables)
        return
    import jax

    if not opt.built:
        opt.build(variables)
    if not hasattr(opt, "_test_jit"):
        opt._test_jit = jax.jit(opt.stateless_apply)
    new_vars, new_opt = opt._test_jit([v.value for v in opt.variables], grads,
                                      [v.value for v in variables])
    for v, value in zip(list(variables) + list(opt.variables), list(new_vars) + list(new_opt)):
        v.assign(value)


def layer_types(kind, net, init):
    """AGC(SGD or Adam).for_model(model) over 2 steps against float64 NumPy."""
    net.set_weights(init)
    variables = net.trainable_variables
    paths = [v.path for v in variables]
    values = [np.asarray(ops.convert_to_numpy(v), np.float64) for v in variables]
    inner = keras.optimizers.SGD(LR) if kind == "sgd" else keras.optimizers.Adam(LR)
    opt = AGC(inner, clipping=CLIP, epsilon=EPS).for_model(net)
    rng = np.random.default_rng(1)
    state = [(np.zeros_like(w), np.zeros_like(w)) for w in values]
    ref = [w.copy() for w in values]
    active = 0
    for t in (1, 2):
        grads = gradients(values, rng)
        step(opt, grads, variables)
        for i, (path, g) in enumerate(zip(paths, grads)):
            excluded = "classifier" in path
            c = g.astype(np.float64) if excluded else np_clip(g, ref[i], expected_axes(path, g.ndim))
            active += int(not np.allclose(c, g))
            if kind == "sgd":
                ref[i] = ref[i] - LR * c
            else:
                ref[i], state[i] = np_adam_step(ref[i], c, state[i], t)
    got = [np.asarray(ops.convert_to_numpy(v), np.float64) for v in variables]
    errors = {p: float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-12))
              for p, a, b in zip(paths, got, ref)}
    return {"max_rel_error": max(errors.values()), "worst": max(errors, key=errors.get),
            "active": active, "excluded": opt.excluded_variables(),
            "axes": {p: opt.variable_axes()[p] for p in paths if p in opt.variable_axes()}}


INNERS = {
    "SGD": lambda: keras.optimizers.SGD(LR, momentum=0.9),
    "Adam": lambda: keras.optimizers.Adam(LR),
    "AdamW": lambda: keras.optimizers.AdamW(LR, weight_decay=0.01),
    "Lion": lambda: keras.optimizers.Lion(LR),
    "Adafactor": lambda: Adafactor(min_dim_size_to_factor=2),
    "SM3": lambda: SM3(LR),
}


def wraps(name):
    """AGC(inner) == inner fed with NumPy-clipped gradients, and != inner alone."""
    rng = np.random.default_rng(2)
    w0 = rng.normal(size=(6, 4)).astype("float32")
    b0 = rng.normal(size=(4,)).astype("float32")
    runs = {}
    for mode in ("agc", "reference", "plain"):
        vs = [keras.Variable(w0, name="kernel"), keras.Variable(b0, name="bias")]
        opt = AGC(INNERS[name](), clipping=CLIP, epsilon=EPS, exclude=None) if mode == "agc" \
            else INNERS[name]()
        steps = np.random.default_rng(3)
        for _ in range(3):
            grads = [(steps.normal(size=x.shape) * steps.choice([0.01, 5.0], size=x.shape))
                     .astype("float32") for x in (w0, b0)]
            if mode == "reference":
                current = [ops.convert_to_numpy(x) for x in vs]
                grads = [np_clip(grads[0], current[0], (0,)), np_clip(grads[1], current[1], None)]
                grads = [g.astype("float32") for g in grads]
            step(opt, grads, vs)
        runs[mode] = np.concatenate([np.ravel(ops.convert_to_numpy(x)) for x in vs]).astype(np.float64)
    scale = np.max(np.abs(runs["reference"]))
    return {"agc_vs_reference": float(np.max(np.abs(runs["agc"] - runs["reference"])) / scale),
            "agc_vs_plain": float(np.max(np.abs(runs["agc"] - runs["plain"])) / scale)}


def accumulated():
    """AGC(SGD(gradient_accumulation_steps=2)) clips the mean of the two gradients."""
    rng = np.random.default_rng(7)
    w0 = rng.normal(size=(6, 4)).astype("float32")
    g1, g2 = ((rng.normal(size=(6, 4)) * 3).astype("float32") for _ in range(2))
    want = w0 - LR * np_clip((g1.astype(np.float64) + g2) / 2, w0, (0,))
    v = keras.Variable(w0)
    opt = AGC(keras.optimizers.SGD(LR, gradient_accumulation_steps=2), clipping=CLIP,
              epsilon=EPS, exclude=None)
    step(opt, [g1], [v])
    step(opt, [g2], [v])
    got = ops.convert_to_numpy(v)
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


def loss_scaled():
    """LossScaleOptimizer(AGC(SGD)) on scaled float16-style gradients == AGC(SGD) on the unscaled."""
    rng = np.random.default_rng(4)
    w0 = rng.normal(size=(6, 4)).astype("float32")
    g = (rng.normal(size=(6, 4)) * 3).astype("float32")
    want = w0 - LR * np_clip(g, w0, (0,))
    v = keras.Variable(w0)
    opt = keras.optimizers.LossScaleOptimizer(AGC(keras.optimizers.SGD(LR), clipping=CLIP,
                                                  epsilon=EPS, exclude=None))
    s = float(opt.initial_scale)
    if keras.backend.backend() == "jax":  # the path model.fit takes on JAX
        opt.build([v])
        new_vars, _ = opt.stateless_apply([x.value for x in opt.variables],
                                          [ops.convert_to_tensor(g * s)], [v.value])
        got = np.asarray(new_vars[0])
    else:
        opt.apply([ops.convert_to_tensor(g * s)], [v])
        got = ops.convert_to_numpy(v)
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


def mixed_float16_fit():
    """model.fit under mixed_float16 (Keras wraps AGC in a LossScaleOptimizer): AGC clips."""
    keras.config.set_dtype_policy("mixed_float16")
    try:
        rng = np.random.default_rng(5)
        x = rng.normal(size=(32, 6)).astype("float32")
        y = (np.arange(32) % 3).astype("int32")
        keras.utils.set_random_seed(6)
        init = None
        results = {}
        for mode in ("agc", "plain"):
            net = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="tanh",
                                                                         name="hidden"),
                                    keras.layers.Dense(3, name="classifier", dtype="float32")])
            if init is None:
                init = net.get_weights()
            net.set_weights(init)
            inner = keras.optimizers.SGD(0.5)
            opt = AGC(inner, clipping=0.01).for_model(net) if mode == "agc" else inner
            net.compile(opt, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            hist = net.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
            results[mode] = (net.get_weights(), hist.history["loss"][-1],
                             type(net.optimizer).__name__)
        (wa, la, kind), (wp, _, _) = results["agc"], results["plain"]
        return {"optimizer": kind, "loss": float(la),
                "hidden_diff": float(np.max(np.abs(wa[0] - wp[0]))),
                "classifier_diff": float(np.max(np.abs(wa[2] - wp[2])))}
    finally:
        keras.config.set_dtype_policy("float32")


def main():
    out = {"backend": keras.backend.backend()}
    parts = sys.argv[1:] or ["layers", "wraps", "loss_scale", "fit16"]
    if "layers" in parts:
        keras.utils.set_random_seed(0)
        net = model()
        init = net.get_weights()
        out["layers"] = {k: layer_types(k, net, init) for k in ("sgd", "adam")}
    if "wraps" in parts:
        out["wraps"] = {name: wraps(name) for name in INNERS}
    if "loss_scale" in parts:
        out["loss_scale"] = loss_scaled()
        out["accumulate"] = accumulated()
    if "fit16" in parts:
        out["fit16"] = mixed_float16_fit()
    print(json.dumps(out))


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
