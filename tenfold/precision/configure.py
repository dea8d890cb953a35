"""Choose and set mixed precision and XLA for this machine, and say what really happens.

References:
    Micikevicius et al. 2018, "Mixed Precision Training", https://arxiv.org/abs/1710.03740
    (float16 compute with float32 master weights and loss scaling);
    Kalamkar et al. 2019, "A Study of BFLOAT16 for Deep Learning Training",
    https://arxiv.org/abs/1905.12322 (bfloat16 needs no loss scaling);
    TensorFlow's Grappler ``auto_mixed_precision`` rewrite (GPUs) and
    ``auto_mixed_precision_onednn_bfloat16`` (CPUs with oneDNN).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import keras

from tenfold import _validate as v
from tenfold._api import export
from tenfold._tf import tensorflow
from tenfold.env import cpu_flags

POLICIES = ("auto", "float32", "mixed_float16", "mixed_bfloat16", "grappler")
KERAS_MIXED = ("mixed_float16", "mixed_bfloat16")
GRAPPLER_GPU = "auto_mixed_precision"
GRAPPLER_CPU = "auto_mixed_precision_onednn_bfloat16"
GRAPPLER_OPTIONS = (GRAPPLER_GPU, GRAPPLER_CPU, "auto_mixed_precision_mkl")

# what the last configure() call set, so it can tell its own state from someone else's
_SET_BY_US: dict[str, Any] = {"keras_policy": None, "grappler": None}


@dataclass
class Device:
    """What the precision choice depends on."""

    kind: str  # "gpu" or "cpu"
    name: str
    compute_capability: tuple[int, int] | None = None
    flags: list[str] = field(default_factory=list)

    def describe(self) -> str:
        if self.kind == "gpu":
            cc = ".".join(map(str, self.compute_capability)) if self.compute_capability else "?"
            return f"GPU {self.name} (compute capability {cc})"
        return f"CPU {self.name} (flags: {', '.join(self.flags) or 'none of interest'})"


@dataclass
class PrecisionReport:
    """What :func:`configure` chose and what will really run.

    Attributes:
        requested: the policy asked for.
        policy: the policy in force (``"float32"``, ``"mixed_float16"``,
            ``"mixed_bfloat16"`` or ``"grappler"``).
        reason: why (for ``"auto"``: the device facts that decided it).
        keras_policy: the global Keras dtype policy now set.
        grappler_option: the Grappler rewrite enabled, or ``None``.
        device: the device the choice was made for.
        jit_compile: the value to pass to ``model.compile(jit_compile=...)``.
        xla: whether XLA will really compile the train step.
        xla_reason: why (Keras turns ``jit_compile="auto"`` off on CPU-only machines and
            under any distribution strategy; the Grappler rewrite does not run in XLA).
        loss_scaling: whether the policy needs loss scaling (``mixed_float16``).
        float32_layers: layers that keep computing in float32 (filled by :meth:`inspect`).
    """

    requested: str
    policy: str
    reason: str
    keras_policy: str
    grappler_option: str | None
    device: str
    jit_compile: bool
    xla: bool
    xla_reason: str
    loss_scaling: bool
    float32_layers: list[str] = field(default_factory=list)

    def inspect(self, model: keras.Model) -> PrecisionReport:
        """Fill :attr:`float32_layers` from ``model``; returns ``self``."""
        self.float32_layers = float32_layers(model)
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """A few markdown lines for a run report."""
        lines = [
            f"- precision: **{self.policy}** (requested {self.requested!r}): {self.reason}",
            f"- Keras dtype policy: `{self.keras_policy}`; Grappler rewrite: "
            f"{'`' + self.grappler_option + '`' if self.grappler_option else 'off'}; "
            f"loss scaling: {'on' if self.loss_scaling else 'off'}",
            f"- XLA: **{'on' if self.xla else 'off'}**: {self.xla_reason}",
            f"- device: {self.device}",
        ]
        if self.float32_layers:
            lines.append(f"- layers computing in float32: {', '.join(self.float32_layers)}")
        return "\n".join(lines)


def detect_device() -> Device:
    """The first accelerator of the Keras backend, else the CPU with its feature flags."""
    from tenfold.env import cpu_model

    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            tf = tensorflow("tenfold.precision.detect_device")
            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                details = tf.config.experimental.get_device_details(gpus[0])
                cc = details.get("compute_capability")
                return Device("gpu", str(details.get("device_name", gpus[0].name)), tuple(cc) if cc else None)
        elif backend == "jax":
            import jax

            device = jax.devices()[0]
            if device.platform == "gpu":
                cc = getattr(device, "compute_capability", None)
                parsed = tuple(int(p) for p in str(cc).split(".")[:2]) if cc else None
                return Device("gpu", str(getattr(device, "device_kind", device)), parsed)
    except (RuntimeError, ValueError, ImportError):  # pragma: no cover - broken drivers
        pass
    return Device("cpu", cpu_model(), None, cpu_flags())


def choose_policy(device: Device) -> tuple[str, str]:
    """The ``"auto"`` choice and its reason for ``device``.

    Example:
    >>> choose_policy(Device("gpu", "A100", (8, 0)))[0]
    'mixed_bfloat16'
    >>> choose_policy(Device("gpu", "V100", (7, 0)))[0]
    'mixed_float16'
    >>> choose_policy(Device("cpu", "old", None, ["avx2"]))[0]
    'float32'
    """
    if device.kind == "gpu":
        cc = device.compute_capability
        if cc is not None and cc >= (8, 0):
            return "mixed_bfloat16", f"{device.describe()}: bfloat16 tensor cores (cc ≥ 8.0), no loss scaling needed"
        if cc is not None and cc >= (6, 0):
            return "mixed_float16", f"{device.describe()}: float16 (cc < 8.0 has no fast bfloat16), with loss scaling"
        return "float32", f"{device.describe()}: too old for fast half precision"
    fast = [f for f in ("avx512_bf16", "amx_bf16") if f in device.flags]
    if fast:
        return "mixed_bfloat16", f"{device.describe()}: native bfloat16 ({', '.join(fast)}) via oneDNN"
    return "float32", f"{device.describe()}: no native bfloat16 (avx512_bf16 / AMX), float32 is fastest"


def _current_grappler() -> str | None:
    if keras.backend.backend() != "tensorflow":
        return None
    tf = tensorflow("the Grappler mixed-precision rewrite")
    options = tf.config.optimizer.get_experimental_options()
    return next((name for name in GRAPPLER_OPTIONS if options.get(name)), None)


def _set_grappler(option: str | None) -> None:
    if keras.backend.backend() != "tensorflow":
        if option is None:
            return
        raise ValueError(
            "policy 'grappler' is TensorFlow's graph rewrite and needs the TensorFlow backend; "
            f"the Keras backend is {keras.backend.backend()!r}. Use 'mixed_bfloat16' or "
            "'mixed_float16' instead."
        )
    tf = tensorflow("the Grappler mixed-precision rewrite")
    options = tf.config.optimizer.get_experimental_options()
    update = {name: False for name in GRAPPLER_OPTIONS if options.get(name)}
    if option is not None:
        update[option] = True
    if update:
        tf.config.optimizer.set_experimental_options(update)


def _in_strategy() -> bool:
    if keras.backend.backend() != "tensorflow":
        return False
    tf = tensorflow("tf.distribute")
    return bool(tf.distribute.has_strategy())


def float32_layers(model: keras.Model) -> list[str]:
    """Names of the top-level layers of ``model`` that compute in float32 while others run
    in half precision; empty when the whole model computes in float32.

    Example:
    >>> configure("mixed_bfloat16").policy
    'mixed_bfloat16'
    >>> float32_layers(tenfold.models.mlp((4,), 3))
    ['classifier']
    >>> _ = configure("float32")
    """
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    names = [layer.name for layer in layers if layer.compute_dtype == "float32"]
    return [] if len(names) == len(layers) else names


@export("tenfold.precision.configure")
def configure(policy: str = "auto", *, jit_compile: bool | str = "auto") -> PrecisionReport:
    """Set the precision policy for this process and report what will really run.

    * ``"float32"``, ``"mixed_float16"``, ``"mixed_bfloat16"``: the Keras dtype policy
      (float32 variables, half-precision compute; models built afterwards use it).
    * ``"grappler"``: TensorFlow's graph rewrite casts a float32 graph itself —
      ``auto_mixed_precision`` (float16) on GPUs, ``auto_mixed_precision_onednn_bfloat16``
      on CPUs (the plain ``auto_mixed_precision`` does nothing on a CPU). Refused together
      with a Keras mixed policy already in force or with ``jit_compile=True`` (the rewrite
      does not run inside XLA).
    * ``"auto"``: bfloat16 on GPUs of compute capability ≥ 8 and on CPUs with
      ``avx512_bf16`` or AMX, float16 on older GPUs, float32 otherwise.

    ``jit_compile`` is resolved as Keras does (``"auto"`` is off on CPU-only machines and
    under a distribution strategy) and returned as ``report.jit_compile`` to pass to
    ``model.compile``. Calling ``configure`` again replaces what the previous call set.
    The tenfold models keep their ``"classifier"`` head in float32, so logits and the loss
    are computed in float32.

    Args:
        policy: one of ``"auto"``, ``"float32"``, ``"mixed_float16"``, ``"mixed_bfloat16"``,
            ``"grappler"``.
        jit_compile: ``"auto"``, ``True`` or ``False``.

    Returns:
        A :class:`PrecisionReport`.

    Example:
    >>> report = configure("float32", jit_compile=False)
    >>> report.policy, report.xla
    ('float32', False)
    """
    v.choice("policy", policy, POLICIES)
    jit_compile = v.auto_or_boolean("jit_compile", jit_compile)
    device = detect_device()
    if policy == "auto":
        chosen, reason = choose_policy(device)
    else:
        chosen, reason = policy, "requested explicitly"
        if policy == "mixed_float16" and device.kind == "cpu":
            reason += " (float16 on a CPU is emulated: expect it to be slower than float32)"
        if policy == "mixed_bfloat16" and device.kind == "cpu" and not (
            {"avx512_bf16", "amx_bf16"} & set(device.flags)
        ):
            reason += " (this CPU has no native bfloat16: expect it to be slower than float32)"

    # conflicts with state that someone other than configure() set
    current_keras = keras.config.dtype_policy().name
    current_grappler = _current_grappler()
    if chosen == "grappler":
        if jit_compile is True:
            raise ValueError(
                "policy 'grappler' conflicts with jit_compile=True: the Grappler mixed-precision "
                "rewrite does not run inside XLA-compiled functions. Use jit_compile=False "
                "(or 'auto'), or a Keras policy ('mixed_bfloat16' / 'mixed_float16') with XLA."
            )
        if current_keras in KERAS_MIXED and current_keras != _SET_BY_US["keras_policy"]:
            raise ValueError(
                f"policy 'grappler' conflicts with the Keras dtype policy {current_keras!r} already "
                "in force: the rewrite would cast an already mixed graph. Call "
                "keras.config.set_dtype_policy('float32') first, or use "
                f"configure({current_keras!r}) instead of the rewrite."
            )
    elif chosen in KERAS_MIXED and current_grappler and current_grappler != _SET_BY_US["grappler"]:
        raise ValueError(
            f"policy {chosen!r} conflicts with the Grappler rewrite {current_grappler!r} enabled "
            "through tf.config.optimizer.set_experimental_options: both would cast the graph. "
            f"Disable it (set_experimental_options({{{current_grappler!r}: False}})) or use "
            "configure('grappler') alone."
        )

    if chosen == "grappler":
        option = GRAPPLER_GPU if device.kind == "gpu" else GRAPPLER_CPU
        keras_policy = "float32"
        reason += f"; Grappler rewrite {option!r} on the {device.kind.upper()}"
    else:
        option = None
        keras_policy = chosen
    keras.config.set_dtype_policy(keras_policy)
    _set_grappler(option)
    _SET_BY_US.update(keras_policy=keras_policy, grappler=option)

    if jit_compile is True:
        xla, xla_reason = True, "jit_compile=True requested"
    elif jit_compile is False:
        xla, xla_reason = False, "jit_compile=False requested"
    elif chosen == "grappler":
        xla, xla_reason = False, "off with the Grappler rewrite (it does not run inside XLA)"
    elif keras.backend.backend() == "tensorflow" and device.kind == "cpu":
        xla, xla_reason = False, "Keras turns jit_compile='auto' off on CPU-only machines"
    elif _in_strategy():
        xla, xla_reason = False, "Keras turns jit_compile='auto' off under a tf.distribute strategy"
    else:
        xla, xla_reason = True, "jit_compile='auto' on an accelerator"
    return PrecisionReport(
        requested=policy, policy=chosen, reason=reason, keras_policy=keras_policy,
        grappler_option=option, device=device.describe(), jit_compile=xla, xla=xla,
        xla_reason=xla_reason, loss_scaling=keras_policy == "mixed_float16",
    )
