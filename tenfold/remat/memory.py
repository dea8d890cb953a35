"""Peak memory of a function call on the backend Keras runs on; never a silent 0.

What is measured, by backend:

* **TensorFlow** — the allocator statistics of the device
  (``tf.config.experimental.reset_memory_stats`` / ``get_memory_info``): the peak bytes
  held during ``fn()`` above the level before it. They track the CPU allocator as well as
  GPUs, in eager and graph mode and under XLA (checked on TensorFlow 2.21). The level
  before is read after the reset, so tensors that already exist are not counted. On a CPU
  without AVX-512 (oneDNN off by default) the allocator counts only when
  ``TF_CPU_ALLOCATOR_USE_BFC=true`` is set before TensorFlow's first operation.
* **JAX** — XLA's compiled memory analysis of ``jax.jit(fn)`` for the given arguments
  (``.lower(*args).compile().memory_analysis()``): the temporary buffers plus the outputs
  the computation allocates, on any device (the CPU too). It is what XLA plans, not a
  runtime reading; ``fn`` must be a pure function that JAX can trace (e.g. built on
  ``model.stateless_call``), called with its arguments: ``peak_memory(step, params, x)``.
* **PyTorch** — on a CUDA device, ``torch.cuda.max_memory_allocated`` during ``fn()`` above
  ``torch.cuda.memory_allocated()`` before. PyTorch keeps no allocator statistics for the
  CPU, so there it raises an error instead of guessing.

Wherever a reading is impossible, or the allocator recorded nothing at all during
``fn()`` (a device the work did not run on), a ``RuntimeError`` names the backend and the
device: a 0 is never returned for "could not measure".
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import keras

from tenfold._api import export
from tenfold._tf import tensorflow

# TensorFlow's CPU allocator counts bytes only with oneDNN on, which TensorFlow turns on by
# default only on CPUs with AVX-512 (measured on an AMD EPYC with AVX2: "Cannot reset memory
# stats for device 'CPU:0'"). With this variable set before the first operation, the CPU uses
# a BFC allocator that keeps statistics, oneDNN or not.
CPU_STATS_ENV = "TF_CPU_ALLOCATOR_USE_BFC"


def default_device() -> str:
    """The device ``peak_memory`` measures by default on the current Keras backend.

    TensorFlow: ``"GPU:0"`` when it sees a GPU, else ``"CPU:0"``; PyTorch: ``"cuda"`` when
    available, else ``"cpu"``; JAX: the platform of its default device (``"cpu"``,
    ``"gpu"``, ``"tpu"``).
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        tf = tensorflow("tenfold.remat.peak_memory")
        return "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU:0"
    if backend == "torch":
        torch = importlib.import_module("torch")
        return "cuda" if torch.cuda.is_available() else "cpu"
    if backend == "jax":
        return importlib.import_module("jax").devices()[0].platform
    raise NotImplementedError(
        f"tenfold.remat.peak_memory measures on the TensorFlow, JAX and PyTorch backends; "
        f"the Keras backend is {backend!r}."
    )


def _nothing_recorded(backend: str, device: str) -> RuntimeError:
    return RuntimeError(
        f"peak_memory: the {backend} allocator of device {device!r} recorded no allocation "
        "during fn(): fn ran on another device, or returned a result computed before. "
        "Pass the device it runs on, or a function that does the work."
    )


def _wait(result: Any) -> None:
    """Block until asynchronous work that produced ``result`` is done."""
    for item in keras.tree.flatten(result):
        if hasattr(item, "numpy"):
            item.numpy()
        elif hasattr(item, "block_until_ready"):
            item.block_until_ready()


def _tensorflow(fn: Callable[..., Any], args: tuple[Any, ...], device: str) -> int:
    tf = tensorflow("tenfold.remat.peak_memory")
    try:
        tf.config.experimental.reset_memory_stats(device)
        base = tf.config.experimental.get_memory_info(device)["current"]
    except (ValueError, RuntimeError, tf.errors.OpError) as err:
        hint = ""
        if "CPU" in device.upper():
            hint = (f" TensorFlow's default CPU allocator keeps statistics only with oneDNN on (the "
                    f"default on CPUs with AVX-512); set {CPU_STATS_ENV}=true (a BFC allocator "
                    "that counts; `tenfold bench` and the tests do) or TF_ENABLE_ONEDNN_OPTS=1 in "
                    "the environment before TensorFlow runs its first operation.")
        raise RuntimeError(
            f"peak_memory: TensorFlow keeps no allocator statistics for device {device!r} "
            f"({err}); its devices: {[d.name for d in tf.config.list_logical_devices()]}.{hint}"
        ) from err
    _wait(fn(*args))
    peak = tf.config.experimental.get_memory_info(device)["peak"]
    if peak <= base:
        raise _nothing_recorded("TensorFlow", device)
    return int(peak - base)


def _jax(fn: Callable[..., Any], args: tuple[Any, ...], device: str | None) -> int:
    jax = importlib.import_module("jax")
    if device is not None:
        raise ValueError(
            f"device is not taken on the JAX backend (it measures the compiled function on "
            f"JAX's default device, {jax.devices()[0]}), received device={device!r}."
        )
    jitted = fn if hasattr(fn, "lower") else jax.jit(fn)
    try:
        stats = jitted.lower(*args).compile().memory_analysis()
    except TypeError as err:  # JAX's tracer errors are TypeErrors
        raise TypeError(
            "peak_memory on JAX compiles fn with jax.jit: fn must be a pure function of its "
            f"arguments (JAX arrays; e.g. built on model.stateless_call); tracing failed: {err}"
        ) from err
    platform = jax.devices()[0].platform
    if stats is None:
        raise RuntimeError(
            f"peak_memory: JAX gives no compiled memory analysis on platform {platform!r}."
        )
    total = (int(stats.temp_size_in_bytes) + int(stats.output_size_in_bytes)
             - int(stats.alias_size_in_bytes))
    if total <= 0:
        raise _nothing_recorded("JAX (compiled memory analysis)", platform)
    return total


def _torch(fn: Callable[..., Any], args: tuple[Any, ...], device: str) -> int:
    torch = importlib.import_module("torch")
    if not str(device).startswith("cuda"):
        raise RuntimeError(
            f"peak_memory on the PyTorch backend measures CUDA devices; device {device!r} "
            "has no allocator statistics in PyTorch (torch.cuda.max_memory_allocated is "
            "CUDA-only). Measure on a GPU, or run the same model on the TensorFlow or JAX "
            "backend, whose CPU measures peak_memory supports."
        )
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    fn(*args)
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device)
    if peak <= base:
        raise _nothing_recorded("PyTorch CUDA", device)
    return int(peak - base)


@export("tenfold.remat.peak_memory")
def peak_memory(fn: Callable[..., Any], *args: Any, device: str | None = None) -> int:
    """Peak bytes allocated while ``fn(*args)`` runs, on the current Keras backend.

    TensorFlow: allocator statistics (CPU and GPU); JAX: compiled memory analysis of
    ``jax.jit(fn)`` (any device); PyTorch: CUDA peak (the CPU is refused with an error).
    Run ``fn`` once before measuring on TensorFlow and PyTorch, so that tracing and
    one-time allocations are not counted. Raises ``RuntimeError`` naming the backend and
    device where nothing can be measured; never returns 0 for that.

    Args:
        fn: callable, e.g. one training step.
        *args: its arguments (JAX: the arrays it is traced with).
        device: TensorFlow ``"CPU:0"``, ``"GPU:0"``, ...; PyTorch ``"cuda"``, ``"cuda:1"``;
            default: :func:`default_device`. Not taken on JAX.

    Example:
    >>> import tensorflow as tf
    >>> x = tf.ones((256, 1024))
    >>> peak_memory(lambda: x * 2.0 + 1.0) >= 4 * 256 * 1024
    True
    """
    if not callable(fn):
        raise TypeError(f"fn must be a callable, received {fn!r} of type {type(fn).__name__}.")
    backend = keras.backend.backend()
    if backend == "jax":
        return _jax(fn, args, device)
    device = device or default_device()
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'CPU:0', received {device!r}.")
    if backend == "tensorflow":
        return _tensorflow(fn, args, device)
    if backend == "torch":
        return _torch(fn, args, device)
    raise NotImplementedError(  # pragma: no cover - default_device raised already
        f"tenfold.remat.peak_memory: backend {backend!r}"
    )
