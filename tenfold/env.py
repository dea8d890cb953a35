"""What machine and versions a run or a benchmark happened on."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import sys
from typing import Any

# the CPU flags that decide mixed-precision and XLA behaviour
INTERESTING_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile", "fma")


def cpu_flags() -> list[str]:
    """The interesting CPU feature flags of this machine (Linux; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [flag for flag in INTERESTING_FLAGS if flag in flags]
    except OSError:
        pass
    return []


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    """Versions, devices and CPU flags, JSON-able.

    Example:
    >>> sorted(environment())[:3]
    ['backend', 'cpu', 'cpu_count']
    """
    import keras
    import numpy as np

    import tenfold

    info: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "tenfold": tenfold.__version__,
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "numpy": np.__version__,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_flags": cpu_flags(),
    }
    if keras.backend.backend() == "tensorflow":
        from tenfold._tf import tensorflow

        tf = tensorflow("the device list of tenfold.env")
        info["tensorflow"] = tf.__version__
        info["devices"] = [d.name for d in tf.config.list_logical_devices()]
    elif keras.backend.backend() == "jax":
        import jax

        info["jax"] = jax.__version__
        info["devices"] = [str(d) for d in jax.devices()]
    return info
