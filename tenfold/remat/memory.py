"""Peak allocator memory of a function call (TensorFlow's allocator statistics)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tenfold._api import export
from tenfold._tf import tensorflow


def default_device() -> str:
    """``"GPU:0"`` when TensorFlow sees a GPU, else ``"CPU:0"``."""
    tf = tensorflow("tenfold.remat.peak_memory")
    return "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU:0"


@export("tenfold.remat.peak_memory")
def peak_memory(fn: Callable[[], Any], *, device: str | None = None) -> int:
    """Peak bytes the allocator of ``device`` held during ``fn()``, above its level before.

    Uses ``tf.config.experimental.reset_memory_stats`` / ``get_memory_info``, which track
    the CPU allocator too (not only GPUs). Run ``fn`` once before measuring, so that
    tracing and one-time allocations are not counted.

    Args:
        fn: zero-argument callable, e.g. one training step.
        device: ``"CPU:0"``, ``"GPU:0"``, ...; default: the first GPU, else the CPU.

    Example:
    >>> import tensorflow as tf
    >>> peak_memory(lambda: tf.ones((1024, 1024)) + 1.0) >= 4 * 1024 * 1024
    True
    """
    if not callable(fn):
        raise TypeError(f"fn must be a zero-argument callable, received {fn!r}.")
    tf = tensorflow("tenfold.remat.peak_memory")
    device = device or default_device()
    tf.config.experimental.reset_memory_stats(device)
    base = tf.config.experimental.get_memory_info(device)["current"]
    result = fn()
    if result is not None:
        # wait for asynchronous work to finish inside the measured window
        for item in tf.nest.flatten(result):
            if hasattr(item, "numpy"):
                item.numpy()
    peak = tf.config.experimental.get_memory_info(device)["peak"]
    return int(max(0, peak - base))
