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

import platform
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import keras

from tenfold import _validate as v
from tenfold._api import export
from tenfold._tf import tensorflow
from tenfold.env import cpu_flags
from tenfold.precision import kernels
from tenfold.precision.kernels import onednn_enabled
from tenfold.precision.outputs import float32_outputs, output_layers
from tenfold.precision.probe import (
    LOSS_ATOL,
    LOSS_RTOL,
    RUNOFF_MARGIN,
    SPEED_MARGIN,
    Candidate,
    Timer,
    pick,
    probe,
)

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
        reason: why (for ``"auto"``: what was measured, or the device facts of the rule and
            "not measured").
        keras_policy: the global Keras dtype policy now set.
        grappler_option: the Grappler rewrite enabled, or ``None``.
        device: the device the choice was made for.
        jit_compile: the value to pass to ``model.compile(jit_compile=...)``.
        xla: whether the train step will really be compiled (XLA; ``torch.compile`` on
            PyTorch).
        xla_reason: why, as Keras resolves ``jit_compile="auto"`` on this backend (see
            :func:`resolve_jit_compile`), or what the probe measured.
        loss_scaling: whether the policy needs loss scaling (``mixed_float16``; Keras'
            ``compile`` wraps the optimizer in a ``LossScaleOptimizer`` itself).
        float32_layers: layers that keep computing in float32 (filled by :meth:`inspect`).
        probe: one dict per candidate timed by ``configure("auto", model, sample)`` (see
            :func:`tenfold.precision.probe.probe`: ``name``, ``policy``, ``xla``,
            ``median_s``, ``ratio`` over float32, ``loss``, ``accepted``, ``why``);
            candidates this machine cannot run are listed with ``median_s`` None. Empty
            when nothing was measured.
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
    probe: list[dict[str, Any]] = field(default_factory=list)

    def inspect(self, model: keras.Model) -> PrecisionReport:
        """Fill :attr:`float32_layers` from ``model``; returns ``self``."""
        self.float32_layers = float32_layers(model)
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """A few markdown lines for a run report (with the probe's table when it ran)."""
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
        if self.probe:
            lines += ["", "| candidate | median step (s) | speed vs float32 | first-step loss | "
                      "warm-up (s) | timed steps | chosen / why |", "|---|---|---|---|---|---|---|"]
            chosen = self.policy + ("+xla" if self.xla else "")
            for row in self.probe:
                if row["median_s"] is None:
                    lines.append(f"| {row['name']} | – | – | – | – | – | {row['why']} |")
                    continue
                mark = "**chosen**; " if row["name"] == chosen else ""
                lines.append(f"| {row['name']} | {row['median_s']:.4f} | {row['ratio']:.2f}× | "
                             f"{row['first_loss']:.4g} | {row['warmup_s']:.1f} | {row.get('steps', '–')}"
                             f"{' (runoff)' if row.get('runoff') else ''} | {mark}{row['why']} |")
        return "\n".join(lines)


def detect_device() -> Device:
    """The first GPU of the Keras backend, else the CPU with its feature flags.

    TensorFlow: ``tf.config`` device details; JAX: ``jax.devices()[0]``; PyTorch:
    ``torch.cuda.is_available()`` → ``get_device_name`` / ``get_device_capability``.
    """
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
        elif backend == "torch":
            import torch

            if torch.cuda.is_available():
                cc = tuple(int(p) for p in torch.cuda.get_device_capability(0))
                return Device("gpu", str(torch.cuda.get_device_name(0)), cc)  # type: ignore[arg-type]
    except (RuntimeError, ValueError, ImportError, AssertionError):  # pragma: no cover - broken drivers
        pass
    return Device("cpu", cpu_model(), None, cpu_flags())


def choose_policy(device: Device) -> tuple[str, str]:
    """The ``"auto"`` rule (used when nothing is measured) and its reason for ``device``.

    GPUs by compute capability: bfloat16 from 8.0 (Ampere), float16 with loss scaling from
    7.0 (Volta tensor cores), float32 below. CPUs: bfloat16 with native bfloat16
    instructions (``avx512_bf16`` / AMX), float32 otherwise (float16 is emulated on CPUs).

    Example:
    >>> choose_policy(Device("gpu", "A100", (8, 0)))[0]
    'mixed_bfloat16'
    >>> choose_policy(Device("gpu", "V100", (7, 0)))[0]
    'mixed_float16'
    >>> choose_policy(Device("gpu", "P100", (6, 0)))[0]
    'float32'
    >>> choose_policy(Device("cpu", "old", None, ["avx2"]))[0]
    'float32'
    """
    if device.kind == "gpu":
        cc = device.compute_capability
        if cc is not None and cc >= (8, 0):
            return "mixed_bfloat16", f"{device.describe()}: bfloat16 tensor cores (cc ≥ 8.0), no loss scaling needed"
        if cc is not None and cc >= (7, 0):
            return "mixed_float16", (f"{device.describe()}: float16 tensor cores (cc ≥ 7.0, no fast bfloat16 "
                                     "below 8.0), with loss scaling")
        return "float32", f"{device.describe()}: no half-precision tensor cores (cc < 7.0)"
    fast = [f for f in ("avx512_bf16", "amx_bf16") if f in device.flags]
    if fast:
        return "mixed_bfloat16", f"{device.describe()}: native bfloat16 ({', '.join(fast)}) via oneDNN"
    return "float32", f"{device.describe()}: no native bfloat16 (avx512_bf16 / AMX), float32 is fastest"


def model_supports_jit(model: keras.Model | None = None) -> bool:
    """Keras' ``model_supports_jit`` (keras/src/trainers/trainer.py): no XLA with TensorFlow
    on an Apple-silicon GPU, when a layer has ``supports_jit = False``, or with TensorFlow's
    op determinism enabled. Without a model, only the machine's part is checked."""
    backend = keras.backend.backend()
    if platform.system() == "Darwin" and "arm" in platform.processor().lower() and backend == "tensorflow":
        tf = tensorflow("XLA")
        if tf.config.list_physical_devices("GPU"):
            return False
    if model is not None and not all(layer.supports_jit for layer in model._flatten_layers()):
        return False
    if backend == "tensorflow":
        from tensorflow.python.framework.config import is_op_determinism_enabled

        if is_op_determinism_enabled():
            return False
    return True


def resolve_jit_compile(
    jit_compile: bool | str,
    *,
    backend: str,
    device: Device,
    policy: str = "float32",
    in_strategy: bool = False,
    supports_jit: bool = True,
) -> tuple[bool, str]:
    """``(compiled, reason)``: what ``model.compile(jit_compile=...)`` really does.

    Mirrors Keras 3's ``Trainer._resolve_auto_jit_compile``: ``"auto"`` is off on
    PyTorch (eager; ``torch.compile`` only when ``jit_compile=True`` is asked), off with
    TensorFlow on a CPU-only machine and under a ``tf.distribute`` strategy, and on
    otherwise (JAX compiles its train step with XLA on every device, the CPU included)
    unless the model cannot be compiled (``supports_jit``; Keras then also turns a
    requested ``True`` off). Off with the Grappler rewrite, which does not run inside XLA.

    Example:
    >>> resolve_jit_compile("auto", backend="torch", device=Device("gpu", "A100", (8, 0)))[0]
    False
    >>> resolve_jit_compile("auto", backend="jax", device=Device("cpu", "EPYC"))
    (True, "Keras compiles the JAX train step with XLA under jit_compile='auto' on every device, here the CPU")
    """
    compiler = "torch.compile" if backend == "torch" else "XLA"
    if jit_compile is True:
        if not supports_jit:
            return False, ("jit_compile=True requested, but a layer of the model does not support it "
                           "(Keras proceeds with jit_compile=False)")
        return True, f"jit_compile=True requested ({compiler})"
    if jit_compile is False:
        return False, "jit_compile=False requested"
    if policy == "grappler":
        return False, "off with the Grappler rewrite (it does not run inside XLA)"
    if backend == "torch":
        return False, ("Keras leaves jit_compile='auto' off on PyTorch (torch.compile only with "
                       "jit_compile=True)")
    if backend == "tensorflow" and device.kind == "cpu":
        return False, "Keras turns jit_compile='auto' off on CPU-only machines"
    if backend == "tensorflow" and in_strategy:
        return False, "Keras turns jit_compile='auto' off under a tf.distribute strategy"
    if not supports_jit:
        return False, "a layer of the model does not support XLA (Keras turns jit_compile='auto' off)"
    where = "the CPU" if device.kind == "cpu" else device.describe()
    if backend == "jax":
        return True, f"Keras compiles the JAX train step with XLA under jit_compile='auto' on every device, here {where}"
    return True, f"Keras turns jit_compile='auto' on with TensorFlow on {where}"


def candidates(
    device: Device, backend: str, xla: tuple[bool, ...], *, onednn: bool | None = None
) -> tuple[list[Candidate], list[tuple[Candidate, str]]]:
    """The settings the probe times on ``device`` under ``backend`` (float32 first, the
    reference), and those it skips with the reason.

    * ``mixed_bfloat16``: every CPU (emulated ones are measured too: that is the point),
      GPUs of compute capability ≥ 8.0;
    * ``mixed_float16`` (loss-scaled): GPUs of compute capability ≥ 7.0; never on a CPU,
      where float16 is emulated;
    * ``grappler`` (TensorFlow only): the oneDNN bfloat16 rewrite on CPUs where TensorFlow
      runs oneDNN (``onednn``; None: :func:`onednn_enabled`) — without oneDNN it left every
      op in float32 (measured on an AVX2-only CPU; with ``TF_ENABLE_ONEDNN_OPTS=1`` it casts
      there too, to Eigen's emulated bfloat16); not on GPUs, where the rewrite is float16
      without loss scaling;
    * each with every value of ``xla`` (the grappler rewrite only without XLA).

    Example:
    >>> [c.name for c in candidates(Device("gpu", "H100", (9, 0)), "jax", (True,))[0]]
    ['float32+xla', 'mixed_bfloat16+xla', 'mixed_float16+xla']
    """
    policies, skipped = ["float32"], []
    if device.kind == "gpu":
        cc = device.compute_capability or (0, 0)
        if cc >= (8, 0):
            policies.append("mixed_bfloat16")
        else:
            skipped.append(("mixed_bfloat16", "no bfloat16 tensor cores (compute capability < 8.0)"))
        if cc >= (7, 0):
            policies.append("mixed_float16")
        else:
            skipped.append(("mixed_float16", "no float16 tensor cores (compute capability < 7.0)"))
        if backend == "tensorflow":
            skipped.append(("grappler", "on a GPU the rewrite is float16 without loss scaling (gradients "
                                        "can underflow): mixed_float16 is the loss-scaled float16"))
    else:
        policies.append("mixed_bfloat16")
        skipped.append(("mixed_float16", "float16 on a CPU is emulated"))
        if backend == "tensorflow":
            if onednn_enabled() if onednn is None else onednn:
                policies.append("grappler")
            else:
                skipped.append(("grappler", "TensorFlow runs without oneDNN here (no AVX-512), "
                                            "and without it the oneDNN bfloat16 rewrite changes "
                                            "nothing"))
    run, skip = [], []
    for name in policies:
        for compiled in xla:
            if name == "grappler" and compiled:
                skip.append((Candidate(name, True), "the rewrite does not run inside XLA"))
            else:
                run.append(Candidate(name, compiled))
    skip += [(Candidate(name, False), why) for name, why in skipped]
    return run, skip


def _xla_options(jit_compile: bool | str, backend: str, device: Device, supports_jit: bool) -> tuple[bool, ...]:
    """The ``jit_compile`` values the probe tries: the one asked for, else as Keras' "auto"
    resolves on JAX (on) and PyTorch (off), and both on TensorFlow (XLA on a CPU is a
    candidate although Keras' "auto" leaves it off: it was faster for an MLP, measured)."""
    if jit_compile is not True and jit_compile is not False:
        if not supports_jit or backend == "torch" or (backend == "tensorflow" and _in_strategy()):
            return (False,)
        return (True,) if backend == "jax" else (False, True)
    return (bool(jit_compile) and supports_jit,)


def _current_grappler() -> str | None:
    if keras.backend.backend() != "tensorflow":
        return None
    tf = tensorflow("the Grappler mixed-precision rewrite")
    options = tf.config.optimizer.get_experimental_options()
    return next((name for name in GRAPPLER_OPTIONS if options.get(name)), None)


def _grappler_needs_tensorflow() -> None:
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "policy 'grappler' is TensorFlow's graph rewrite and needs the TensorFlow backend "
            f"(KERAS_BACKEND=tensorflow); the Keras backend is {keras.backend.backend()!r}. Use "
            "'mixed_bfloat16' or 'mixed_float16' instead."
        )


def _set_grappler(option: str | None) -> None:
    if keras.backend.backend() != "tensorflow":
        if option is not None:
            _grappler_needs_tensorflow()
        return
    tf = tensorflow("the Grappler mixed-precision rewrite")
    options = tf.config.optimizer.get_experimental_options()
    update = {name: False for name in GRAPPLER_OPTIONS if options.get(name)}
    if option is not None:
        update[option] = True
    if update:
        tf.config.optimizer.set_experimental_options(update)


def _set_state(policy: str, device: Device) -> tuple[str, str | None]:
    """Set the global Keras policy and Grappler rewrite of ``policy``; returns them."""
    option = (GRAPPLER_GPU if device.kind == "gpu" else GRAPPLER_CPU) if policy == "grappler" else None
    keras_policy = "float32" if policy == "grappler" else policy
    keras.config.set_dtype_policy(keras_policy)
    _set_grappler(option)
    _SET_BY_US.update(keras_policy=keras_policy, grappler=option)
    return keras_policy, option


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


def _warn_if_kernels_wrong() -> None:
    """A RuntimeWarning when TensorFlow's convolution gradients are wrong on this machine
    (:func:`tenfold.precision.kernels.conv_gradients`; oneDNN forced on without AVX-512)."""
    if keras.backend.backend() != "tensorflow":
        return
    check = kernels.conv_gradients()
    if not check.ok:
        warnings.warn(check.message(), RuntimeWarning, stacklevel=3)


@export("tenfold.precision.configure")
def configure(
    policy: str = "auto",
    model: keras.Model | None = None,
    sample: tuple[Any, Any] | None = None,
    *,
    probe_steps: int = 8,
    jit_compile: bool | str = "auto",
    timer: Timer | None = None,
) -> PrecisionReport:
    """Set the precision policy for this process and report what will really run.

    * ``"float32"``, ``"mixed_float16"``, ``"mixed_bfloat16"``: the Keras dtype policy
      (float32 variables, half-precision compute; models built afterwards use it).
      ``mixed_float16`` needs loss scaling: ``model.compile`` wraps the optimizer in a
      ``keras.optimizers.LossScaleOptimizer`` itself under that policy, and
      :func:`tenfold.precision.train_step` does it for custom loops.
    * ``"grappler"`` (TensorFlow only): TensorFlow's graph rewrite casts a float32 graph
      itself — ``auto_mixed_precision`` (float16) on GPUs,
      ``auto_mixed_precision_onednn_bfloat16`` on CPUs (the plain ``auto_mixed_precision``
      does nothing on a CPU). Refused together with a Keras mixed policy already in force
      or with ``jit_compile=True`` (the rewrite does not run inside XLA).
    * ``"auto"`` with ``model`` and ``sample=(x, y)``: **measured**. Every candidate the
      backend and device support (:func:`candidates`: float32, ``mixed_bfloat16``,
      loss-scaled ``mixed_float16`` on GPUs of compute capability ≥ 7.0, the Grappler
      rewrite on TensorFlow CPUs, XLA on and off where it applies) trains a fresh copy of
      ``model`` for ``probe_steps`` steps on ``sample``, interleaved, and the fastest whose
      first-step loss stays within 5 % + 0.01 of float32's (and whose loss stays
      finite) is chosen (float32 unless another is at
      least 2 % faster). See :mod:`tenfold.precision.probe`; ``report.probe`` and
      ``report.summary()`` list every candidate. ``model`` is not trained or changed
      (beyond :func:`float32_outputs`): it was built under the policy in force before, so
      rebuild it after this call (same seed) to train under the chosen policy.
    * ``"auto"`` without a model: the rule of :func:`choose_policy` (bfloat16 on GPUs of
      compute capability ≥ 8 and on CPUs with ``avx512_bf16`` or AMX, loss-scaled float16
      on GPUs ≥ 7.0, float32 otherwise); the reason says it was not measured.

    ``jit_compile`` is resolved as Keras resolves it on the backend
    (:func:`resolve_jit_compile`) and returned as ``report.jit_compile`` to pass to
    ``model.compile``. With ``model``, its output layers are made float32
    (:func:`float32_outputs`) and ``report.float32_layers`` is filled. Calling
    ``configure`` again replaces what the previous call set.

    Args:
        policy: one of ``"auto"``, ``"float32"``, ``"mixed_float16"``, ``"mixed_bfloat16"``,
            ``"grappler"``.
        model: keras.Model or None. The model to probe (``"auto"``) and give float32
            outputs. A compiled model is probed with its loss and a fresh optimizer of its
            optimizer's class; an uncompiled one with SGD and a loss from the labels.
        sample: ``(x, y)``, one training batch; needed with ``"auto"`` and a model.
        probe_steps: int >= 1. Timed steps per candidate (after one untimed warm-up step);
            more, up to 25x, when float32's steps add up to less than a second
            (``tenfold.precision.probe.MIN_TIMED_S``).
        jit_compile: ``"auto"``, ``True`` or ``False``.
        timer: ``timer(candidate_name, step) -> seconds`` of one ``step()``; defaults to
            the wall clock. For tests.

    Returns:
        A :class:`PrecisionReport`.

    Example:
    >>> report = configure("float32", jit_compile=False)
    >>> report.policy, report.xla
    ('float32', False)
    """
    v.choice("policy", policy, POLICIES)
    jit_compile = v.auto_or_boolean("jit_compile", jit_compile)
    probe_steps = v.integer("probe_steps", probe_steps, low=1)
    if model is not None:
        v.instance("model", model, keras.Model, "a keras.Model or None")
    if timer is not None and not callable(timer):
        raise TypeError(f"timer must be None or a callable (name, step) -> seconds, received {_short(timer)}.")
    measure = policy == "auto" and model is not None
    if measure and (not isinstance(sample, (tuple, list)) or len(sample) != 2):
        raise ValueError(
            "configure('auto', model=...) times training steps and needs sample=(x, y), one "
            f"training batch; received sample={_short(sample)}. Pass a batch, or call "
            "configure('auto') without a model for the rule, or name the policy."
        )
    if sample is not None and not measure:
        raise ValueError(
            f"sample is only used by configure('auto', model, sample) to time the candidates; "
            f"received sample={_short(sample)} with policy={policy!r} and "
            f"{'no model' if model is None else 'a model'}. Drop it, or pass policy 'auto' and a model."
        )
    _warn_if_kernels_wrong()
    if policy == "grappler":
        _grappler_needs_tensorflow()
    backend = keras.backend.backend()
    device = detect_device()
    supports_jit = model_supports_jit(model)
    probed: list[dict[str, Any]] = []
    current_keras = keras.config.dtype_policy().name
    current_grappler = _current_grappler()
    if measure:
        if current_grappler and current_grappler != _SET_BY_US["grappler"]:
            raise ValueError(
                f"configure('auto', model=...) times every policy itself and would override the "
                f"Grappler rewrite {current_grappler!r} enabled through "
                "tf.config.optimizer.set_experimental_options. Disable it "
                f"(set_experimental_options({{{current_grappler!r}: False}})) first."
            )
        chosen, xla, reason, xla_reason, probed = _measure(
            model, sample, device, backend, jit_compile, supports_jit, probe_steps, timer
        )
    else:
        if policy == "auto":
            chosen, reason = choose_policy(device)
            reason += " (not measured: pass model= and sample= to time the candidates)"
        else:
            chosen, reason = policy, "requested explicitly"
            if policy == "mixed_float16" and device.kind == "cpu":
                reason += " (float16 on a CPU is emulated: expect it to be slower than float32)"
            if policy == "mixed_bfloat16" and device.kind == "cpu" and not (
                {"avx512_bf16", "amx_bf16"} & set(device.flags)
            ):
                reason += " (this CPU has no native bfloat16: expect it to be slower than float32)"
            if policy == "grappler" and device.kind == "gpu":
                reason += (" (the float16 rewrite runs without loss scaling: wrap the optimizer in "
                           "keras.optimizers.LossScaleOptimizer, or use 'mixed_float16')")
        xla, xla_reason = resolve_jit_compile(
            jit_compile, backend=backend, device=device, policy=chosen,
            in_strategy=_in_strategy(), supports_jit=supports_jit,
        )
        # conflicts with state that someone other than configure() set
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

    keras_policy, option = _set_state(chosen, device)
    if chosen == "grappler":
        reason += f"; Grappler rewrite {option!r} on the {device.kind.upper()}"
        if device.kind == "cpu" and not onednn_enabled():
            reason += (" — but TensorFlow runs without oneDNN here (its default on CPUs without "
                       "AVX-512), and then the rewrite leaves every op in float32. "
                       "TF_ENABLE_ONEDNN_OPTS=1 would turn oneDNN on, but on an AVX2-only CPU "
                       "its 1x1 strided convolution gradients were measured wrong (see "
                       "tenfold.precision.conv_gradients)")
    report = PrecisionReport(
        requested=policy, policy=chosen, reason=reason, keras_policy=keras_policy,
        grappler_option=option, device=device.describe(), jit_compile=xla, xla=xla,
        xla_reason=xla_reason, loss_scaling=keras_policy == "mixed_float16", probe=probed,
    )
    if model is not None:
        if keras_policy in KERAS_MIXED and _has_output_layers(model):
            float32_outputs(model)
        report.inspect(model)
    return report


def _has_output_layers(model: keras.Model) -> bool:
    """Whether ``model`` has a layer graph to read its output layers from."""
    try:
        return bool(output_layers(model))
    except (AttributeError, ValueError):
        return False


def _measure(
    model: keras.Model, sample: Any, device: Device, backend: str, jit_compile: bool | str,
    supports_jit: bool, steps: int, timer: Timer | None,
) -> tuple[str, bool, str, str, list[dict[str, Any]]]:
    """Run the probe; ``(policy, xla, reason, xla_reason, rows)``."""
    xla_options = _xla_options(jit_compile, backend, device, supports_jit)
    run, skipped = candidates(device, backend, xla_options)
    before = (keras.config.dtype_policy(), _current_grappler())
    try:
        rows = probe(model, tuple(sample), run, steps=steps, timer=timer,
                     apply=lambda c: _set_state(c.policy, device))
    except BaseException:
        keras.config.set_dtype_policy(before[0])
        _set_grappler(before[1])
        raise
    best = pick(rows)
    rows += [{"name": c.name, "policy": c.policy, "xla": c.xla, "median_s": None, "ratio": None,
              "first_loss": None, "loss": None, "warmup_s": None, "steps": 0, "runoff": False,
              "runoff_steps": 0, "accepted": False, "why": f"not run: {why}"} for c, why in skipped]
    close = [r for r in rows if r["runoff"]]
    how = f"{rows[0]['steps'] - rows[0]['runoff_steps']} interleaved steps per candidate, median"
    if close:
        how += (f", {close[0]['runoff_steps']} more between "
                f"{' and '.join(r['name'] for r in close)} (within {RUNOFF_MARGIN:.0%} of each other)")
    how += f"; first-step loss within {LOSS_RTOL:.0%} + {LOSS_ATOL} of float32's"
    others = ", ".join(f"{r['name']} {r['ratio']:.2f}×" for r in rows
                       if r["median_s"] is not None and r is not best)
    if best is rows[0]:
        faster = [r for r in rows[1:] if r["median_s"] is not None and r["accepted"]
                  and r["median_s"] < best["median_s"]]
        verdict = ("measured: no candidate was more than "
                   f"{SPEED_MARGIN:.0%} faster than {best['name']}" if faster
                   else f"measured: {best['name']} is the fastest")
    else:
        verdict = f"measured: {best['name']} trains at {best['ratio']:.2f}× float32"
    reason = f"{verdict} ({others}; {how}) on {device.describe()}"
    if len(xla_options) == 2:
        twin = next((r for r in rows if r["policy"] == best["policy"] and r["xla"] != best["xla"]
                     and r["median_s"] is not None), None)
        if twin is None:
            xla_reason = "off with the Grappler rewrite (it does not run inside XLA)"
        elif best["xla"]:
            xla_reason = f"measured: {best['name']} {best['ratio']:.2f}× against {twin['name']} {twin['ratio']:.2f}×"
        elif twin["median_s"] is not None and twin["median_s"] < best["median_s"]:
            xla_reason = (f"measured: {twin['name']} ({twin['ratio']:.2f}×) was not more than "
                          f"{SPEED_MARGIN:.0%} faster, XLA left off")
        else:
            xla_reason = f"measured: slower with XLA ({twin['name']} {twin['ratio']:.2f}×)"
    else:
        _, xla_reason = resolve_jit_compile(
            jit_compile, backend=backend, device=device, policy=best["policy"],
            in_strategy=_in_strategy(), supports_jit=supports_jit)
    return best["policy"], bool(best["xla"]), reason, xla_reason, rows


def _short(value: Any) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else f"{type(value).__name__} {text[:50]}..."
