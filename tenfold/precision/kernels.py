"""A self-check of TensorFlow's convolution gradient kernels on this machine.

TensorFlow 2.21 with oneDNN forced on (``TF_ENABLE_ONEDNN_OPTS=1``) on a CPU without
AVX-512 (measured on an AMD EPYC with AVX2 and FMA) computes wrong kernel gradients for 1×1
convolutions with stride 2 or 3 whenever the input has rows or columns the stride skips
(relative errors 0.2 to 0.97 at input sizes 8, 10 and 12, stride 2 and 3; eager and graph
mode alike; the 3×3, stride-1 and odd-size cases checked were right). Every ResNet-style projection shortcut is such a convolution, so
training there silently follows wrong gradients. TensorFlow's default on such CPUs (oneDNN
off) is right, as is oneDNN on CPUs with AVX-512 where it is the default.

:func:`conv_gradients` runs a few such convolutions once per process (milliseconds) and
compares the gradients TensorFlow computes with a float64 NumPy reference; the trainer
refuses to train when they differ (see ``tenfold.train.build``).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import keras
import numpy as np

from tenfold._api import export

# (input size, stride, input channels, output channels): the failing case and neighbours
SHAPES = ((8, 2, 3, 4), (10, 2, 5, 16), (12, 3, 2, 4), (9, 2, 3, 4))
RTOL = 1e-4


@dataclass(frozen=True)
class KernelCheck:
    """The outcome of :func:`conv_gradients`.

    Attributes:
        ok: every gradient within ``RTOL`` of the float64 reference.
        worst: the largest relative error (max |got − want| / max |want|) seen.
        failures: ``"HxW stride S, C→K channels, eager|graph: relative error E"`` per wrong case.
        onednn: whether TensorFlow runs its oneDNN kernels in this process.
    """

    ok: bool
    worst: float
    failures: tuple[str, ...]
    onednn: bool

    def message(self) -> str:
        """What is wrong and what to do, for an error or a warning (empty when ``ok``)."""
        if self.ok:
            return ""
        setting = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
        fix = ("unset TF_ENABLE_ONEDNN_OPTS (it is "
               f"{setting!r} here) so that TensorFlow keeps its default"
               if setting not in (None, "", "0") else
               "set TF_ENABLE_ONEDNN_OPTS=0 before TensorFlow starts")
        return (f"TensorFlow computes wrong convolution gradients on this machine "
                f"({'oneDNN on' if self.onednn else 'oneDNN off'}): "
                f"{'; '.join(self.failures[:3])}"
                f"{f' and {len(self.failures) - 3} more' if len(self.failures) > 3 else ''} "
                f"against a float64 NumPy reference. Training would follow wrong gradients: "
                f"{fix}.")


def _reference(x: np.ndarray, dy: np.ndarray, w: np.ndarray, stride: int):
    """float64 gradients of Σ conv1x1(x, w, stride, VALID) · dy w.r.t. w and x."""
    x64, dy64 = x.astype("float64"), dy.astype("float64")
    dw = np.einsum("nhwc,nhwk->ck", x64[:, ::stride, ::stride], dy64)[None, None]
    dx = np.zeros_like(x64)
    dx[:, ::stride, ::stride] = np.einsum("nhwk,ck->nhwc", dy64, w[0, 0].astype("float64"))
    return dw, dx


def onednn_enabled() -> bool:
    """Whether TensorFlow runs its oneDNN kernels (on by default with AVX-512; elsewhere only
    with ``TF_ENABLE_ONEDNN_OPTS=1``): without them the oneDNN bfloat16 rewrite changes
    nothing (measured on an AVX2-only AMD EPYC)."""
    if keras.backend.backend() != "tensorflow":
        return False
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):  # pragma: no cover - another TensorFlow build
        return False


@export("tenfold.precision.conv_gradients")
@functools.cache
def conv_gradients() -> KernelCheck:
    """Check TensorFlow's 1×1 strided convolution gradients against float64 NumPy, once per
    process (eager and inside a ``tf.function``).

    Example:
    >>> check = conv_gradients()
    >>> check.ok, check.message() == ""
    (True, True)
    """
    import tensorflow as tf

    def grads(x, w, dy, stride):
        with tf.GradientTape() as tape:
            tape.watch([x, w])
            loss = tf.reduce_sum(tf.nn.conv2d(x, w, stride, "VALID") * dy)
        return tape.gradient(loss, [w, x])

    graph = tf.function(grads, reduce_retracing=True)
    rng = np.random.default_rng(0)
    worst, failures = 0.0, []
    for size, stride, cin, cout in SHAPES:
        out = (size - 1) // stride + 1
        x = rng.normal(size=(2, size, size, cin)).astype("float32")
        w = rng.normal(size=(1, 1, cin, cout)).astype("float32")
        dy = rng.normal(size=(2, out, out, cout)).astype("float32")
        want = _reference(x, dy, w, stride)
        for mode, fn in (("eager", grads), ("graph", graph)):
            got = fn(tf.constant(x), tf.constant(w), tf.constant(dy), stride)
            err = max(float(np.abs(g.numpy() - r).max() / np.abs(r).max())
                      for g, r in zip(got, want))
            worst = max(worst, err)
            if not err <= RTOL:
                failures.append(f"{size}×{size} stride {stride}, {cin}→{cout} channels, {mode}: "
                                f"relative error {err:.2g}")
    return KernelCheck(not failures, worst, tuple(failures), onednn_enabled())
