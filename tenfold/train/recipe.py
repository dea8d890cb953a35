"""The recipe: one YAML file that says what `tenfold train` does.

A recipe is read with ``yaml.safe_load`` into a pydantic v2 schema in which every section
forbids unknown keys, so a typo is an error (with the nearest valid key suggested), never a
silently ignored setting. ``--set a.b=c`` overrides are applied to the raw mapping before
validation; their values are parsed as YAML (``--set train.epochs=5``,
``--set model.blocks=[1,1]``).

Sections: ``data``, ``model``, ``optimizer``, ``agc``, ``schedule``, ``loss``, ``train``,
``evaluate``, ``precision``, ``distribute``. Each technique adds its keys to its section.

Everything that can be checked before training is checked at load: numbers are finite
(``inf``/``nan`` are refused), sizes and counts are positive, names are known (activation,
conv, norm, loss), and the model's parameter count, estimated from ``model:``, must not
exceed ``train.max_parameters`` (raise it for a bigger model).
"""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import keras
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tenfold import _validate, registry


class RecipeError(ValueError):
    """A recipe, a recipe file or an override is wrong; the message says what and how."""


# recipe names of the long-tail losses (docs/long-tail.md); any registered loss also works
LOSS_ALIASES = {
    "balanced_softmax": "BalancedSoftmaxLoss",
    "logit_adjusted": "LogitAdjustedLoss",
    "ldam": "LDAMLoss",
    "class_balanced": "ClassBalancedLoss",
}


def resolve_loss_name(name: str) -> str | None:
    """The registered loss class name of a recipe's ``loss.name`` (None: cross-entropy)."""
    if name == "cross_entropy":
        return None
    if name in LOSS_ALIASES:
        return LOSS_ALIASES[name]
    names = {n.lower(): n for n in registry.list("losses")}
    if name.lower() in names:
        return names[name.lower()]
    choices = ["cross_entropy", *LOSS_ALIASES, *registry.list("losses")]
    raise ValueError(
        f"unknown loss {name!r};{registry.suggest(name, choices)} accepted: {', '.join(choices)}"
    )


PositiveInt = Annotated[int, Field(gt=0)]


class Section(BaseModel):
    """Base of every recipe section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class AugmentConfig(Section):
    """Augmentation applied to training images (after re-sampling, around echoing)."""

    random_translation: float = Field(0.0, ge=0.0, lt=1.0, description="max shift, fraction of size")


class EchoConfig(Section):
    """Data echoing (docs/data-echoing.md): reuse each example or batch ``factor`` times."""

    factor: float = Field(2.0, ge=1.0, description="echo factor e >= 1 (fractional: mean e)")
    level: Literal["example", "batch"] = Field("example", description="echo examples or whole batches")
    placement: Literal["before_augmentation", "after_augmentation"] = Field(
        "after_augmentation", description="example level: echo before or after augmentation"
    )
    shuffle_buffer: int | None = Field(
        None, gt=0, description="shuffle after the echo; null: 4 batches for example level"
    )


class DataConfig(Section):
    name: str = Field("digits", description="'digits', a .npz file, an image folder or a TFDS name")
    image_size: PositiveInt | list[PositiveInt] | None = Field(
        None, description="resize images to this size: an int or [height, width] "
        "(keras.applications models need at least 32x32; digits are 8x8)"
    )
    channels: Literal[1, 3] | None = Field(
        None, description="3: grey images repeated to RGB (for a model that takes 3 channels); "
        "1: RGB to grey (ITU-R 601 luma); null: as loaded"
    )
    validation_fraction: float = Field(0.15, gt=0.0, lt=1.0)
    test_fraction: float = Field(0.25, gt=0.0, lt=1.0)
    on_bad_file: Literal["skip", "fail"] = Field(
        "skip", description="image folder: skip unreadable files (listed in the report) or stop "
        "before training naming the first"
    )
    imbalance_factor: float | None = Field(
        None, ge=1.0, description="long-tail the training split (CIFAR-LT profile); null keeps it"
    )
    batch_size: int = Field(32, gt=0)
    augment: AugmentConfig = AugmentConfig()
    sampler: Literal["class_balanced", "square_root", "progressive", "instance"] | None = Field(
        None, description="re-sample the training split by class (docs/long-tail.md); null shuffles"
    )
    echo: EchoConfig | None = Field(None, description="data echoing (docs/data-echoing.md); null: off")

    @field_validator("image_size")
    @classmethod
    def _size_pair(cls, value: Any) -> Any:
        if isinstance(value, list) and len(value) != 2:
            raise ValueError(f"image_size must be an int or [height, width], received a list of {len(value)}")
        return value


APPLICATIONS = "keras.applications."
BUILT_IN_MODELS = ("small_resnet", "mlp")
# the keys that shape tenfold's own networks; a keras.applications, file or factory model
# takes its settings from model.options / model.convert instead
SWITCH_KEYS = ("width", "blocks", "conv", "norm", "activation", "hidden", "dropout", "head")


def application_names() -> list[str]:
    """The model constructors of ``keras.applications`` (``MobileNetV2``, ``ResNet50``, ...)."""
    return sorted(n for n in dir(keras.applications)
                  if n[:1].isupper() and callable(getattr(keras.applications, n)))


def _known_model_name(value: str) -> str:
    if value in BUILT_IN_MODELS:
        return value
    names = application_names()
    if value.startswith(APPLICATIONS) and value[len(APPLICATIONS):] in names:
        return value
    choices = [*BUILT_IN_MODELS, *(APPLICATIONS + n for n in names)]
    near = _validate.suggest(value, choices)
    if not near:  # "MobileNetV2" or "keras.applications.MobilenetV2"
        close = difflib.get_close_matches(value.removeprefix(APPLICATIONS), names, n=1, cutoff=0.5)
        near = f" Did you mean {APPLICATIONS + close[0]!r}?" if close else ""
    raise ValueError(
        f"unknown model {value!r};{near} accepted: {', '.join(BUILT_IN_MODELS)} or "
        f"{APPLICATIONS}<name> with <name> one of {', '.join(names)} (or use model.path / "
        "model.factory for your own model)"
    )


class ConvertConfig(Section):
    """Layer swaps on any functional model, through ``tenfold.reparam.convert`` (docs/your-model.md)."""

    conv: Literal["ws", "acnet", "repvgg"] | None = Field(
        None, description="Conv2D -> WSConv2D, ACBlock or RepVGGBlock where the kernel allows it"
    )
    norm: Literal["ebn", "fused_bn"] | None = Field(
        None, description="BatchNormalization -> ExtendedBatchNormalization or FusedBatchNormalization"
    )
    exclude: list[str] = Field(default_factory=list, description="layer-path regexes left as they are")


class ModelConfig(Section):
    name: str | None = Field(
        "small_resnet", description="small_resnet, mlp or keras.applications.<Name> (weights=None, "
        "input shape and classes from the data); null with model.path or model.factory"
    )
    path: str | None = Field(None, description="a .keras model file to train (input and classes must fit the data)")
    factory: str | None = Field(
        None, description="'package.module:function' called as function(input_shape, num_classes, **options)"
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments of the keras.applications constructor or the factory"
    )
    width: int = Field(16, gt=0)
    blocks: list[PositiveInt] = Field(default_factory=lambda: [1, 1, 1], min_length=1,
                                      description="residual blocks per stage")
    conv: str = "plain"
    norm: str = "bn"
    activation: str = "relu"
    hidden: list[PositiveInt] = Field(default_factory=lambda: [128, 128], description="MLP widths")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="MLP dropout")
    head: Literal["dense", "normed"] = Field(
        "dense", description="classifier: Dense, or NormedDense (cosine logits, for loss ldam)"
    )
    convert: ConvertConfig | None = Field(
        None, description="swap layers of the model (tenfold.reparam.convert); null: as built"
    )
    bn_momentum: float | None = Field(
        None, gt=0.0, lt=1.0, description="momentum of every batch-norm layer (keras.applications "
        "build 0.999: too slow for a small data set from scratch); null: as built"
    )
    remat: Literal["sqrt"] | int | list[str] | None = Field(
        None, description="gradient recomputation (docs/recompute.md): 'sqrt', a segment count "
        "or layer names; null: off"
    )

    @model_validator(mode="before")
    @classmethod
    def _source_default(cls, data: Any) -> Any:
        """``model.path`` / ``model.factory`` given without ``model.name``: no built-in name."""
        if isinstance(data, dict) and "name" not in data and (
            data.get("path") is not None or data.get("factory") is not None
        ):
            return {**data, "name": None}
        return data

    @model_validator(mode="after")
    def _one_source(self) -> ModelConfig:
        given = {k: getattr(self, k) for k in ("name", "path", "factory") if getattr(self, k) is not None}
        if len(given) != 1:
            shown = ", ".join(f"model.{k}={v!r}" for k, v in given.items()) or "none"
            raise ValueError(
                f"give exactly one of model.name, model.path, model.factory; received {shown}"
            )
        if self.builtin:
            if self.options:
                raise ValueError(
                    f"model.options={self.options}: {self.name} takes its settings from model.width, "
                    "model.blocks, ... (options are for keras.applications and factory models)"
                )
            return self
        defaults = ModelConfig.model_fields
        changed = [k for k in SWITCH_KEYS if k in self.model_fields_set
                   and getattr(self, k) != defaults[k].get_default(call_default_factory=True)]
        if changed:
            raise ValueError(
                f"model.{changed[0]}: shapes tenfold's own small_resnet / mlp only, not "
                f"{self.source}; set the constructor's arguments in model.options and swap layers "
                "with model.convert"
            )
        return self

    @property
    def builtin(self) -> bool:
        """Whether the model is one of tenfold's own networks (``small_resnet``, ``mlp``)."""
        return self.name in BUILT_IN_MODELS

    @property
    def source(self) -> str:
        """The model's source, for messages: its name, ``path: ...`` or ``factory: ...``."""
        if self.path is not None:
            return f"model.path {self.path!r}"
        if self.factory is not None:
            return f"model.factory {self.factory!r}"
        return str(self.name)

    @field_validator("name")
    @classmethod
    def _known_name(cls, value: str | None) -> str | None:
        return None if value is None else _known_model_name(value)

    @field_validator("path")
    @classmethod
    def _keras_file(cls, value: str | None) -> str | None:
        if value is not None and not value.endswith(".keras"):
            raise ValueError("must be a .keras file (written by model.save)")
        return value

    @field_validator("factory")
    @classmethod
    def _factory_form(cls, value: str | None) -> str | None:
        if value is None:
            return value
        module, _, function = value.partition(":")
        if not (module and function and all(p.isidentifier() for p in module.split("."))
                and function.isidentifier()):
            raise ValueError(
                "must be 'package.module:function' (e.g. 'my_models:build')"
            )
        return value

    @field_validator("remat")
    @classmethod
    def _remat_count(cls, value: Any) -> Any:
        if isinstance(value, int) and value < 1:
            raise ValueError(f"a remat segment count must be >= 1, received {value}")
        return value

    @field_validator("activation")
    @classmethod
    def _known_activation(cls, value: str) -> str:
        try:
            keras.activations.get(value)
        except (ValueError, TypeError):
            names = sorted(n for n in dir(keras.activations) if not n.startswith("_")
                           and n not in ("get", "serialize", "deserialize"))
            raise ValueError(f"unknown activation {value!r};{registry.suggest(value, names)} "
                             f"accepted: {', '.join(names)}") from None
        return value

    def parameter_estimate(self, input_size: int = 1, num_classes: int = 2) -> int:
        """A lower bound on the parameter count (inputs of ``input_size`` values); 0 for a
        model tenfold does not build itself (counted once built)."""
        if not self.builtin:
            return 0
        if self.name == "mlp":
            sizes = [input_size, *self.hidden, num_classes]
            return sum(a * b + b for a, b in zip(sizes, sizes[1:]))
        widths = [self.width * 2**i for i, _ in enumerate(self.blocks)]
        convs = sum(2 * 9 * w * w * n for w, n in zip(widths, self.blocks))
        return convs + widths[-1] * num_classes

    @field_validator("conv")
    @classmethod
    def _known_conv(cls, value: str) -> str:
        return _known("conv", value)

    @field_validator("norm")
    @classmethod
    def _known_norm(cls, value: str) -> str:
        return _known("norm", value)


class OptimizerConfig(Section):
    name: str = Field("adam", description="a Keras optimizer name or a registered tenfold one")
    learning_rate: float = Field(1e-3, gt=0.0)
    weight_decay: float | None = Field(None, ge=0.0)
    options: dict[str, Any] = Field(default_factory=dict, description="extra optimizer kwargs")


class AGCConfig(Section):
    """Adaptive gradient clipping around the optimizer (docs/optimizers.md); off by default."""

    clipping: float | None = Field(
        None, gt=0.0, description="AGC threshold λ (NFNets: 0.01); null turns AGC off"
    )
    epsilon: float = Field(1e-3, gt=0.0, description="floor on the weight norm")
    exclude: list[str] = Field(
        default_factory=list,
        description="more variable-path regexes left unclipped (the classifier, found from the "
        "model's structure, always is)",
    )


class ScheduleConfig(Section):
    name: Literal["constant", "cosine", "cyclical", "one_cycle"] = "cosine"
    warmup_epochs: float = Field(0.0, ge=0.0)
    alpha: float = Field(0.0, ge=0.0, le=1.0, description="cosine: final fraction of the rate")
    # cyclical learning rates (docs/cyclical-learning-rates.md)
    bounds: list[float] | Literal["from_lr_find"] | None = Field(
        None,
        description="cyclical/one_cycle: [low, high] rates; from_lr_find runs the LR range test "
        "first (any schedule: its peak rate); null: [lr/4, lr] of optimizer.learning_rate",
    )
    mode: Literal["triangular", "triangular2", "exp_range"] = "triangular"
    gamma: float = Field(1.0, gt=0.0, le=1.0, description="cyclical exp_range: decay per step")
    step_size_epochs: float = Field(4.0, gt=0.0, description="cyclical: epochs per half cycle")
    warmup_fraction: float = Field(0.3, gt=0.0, lt=1.0, description="one_cycle: warm-up share")
    cycle_momentum: bool = Field(False, description="momentum / beta_1 from 0.95 to 0.85 and back")
    lr_find_steps: int = Field(100, ge=10, description="from_lr_find: steps of the range test")
    lr_find_range: list[float] = Field(
        default_factory=lambda: [1e-6, 10.0], description="from_lr_find: [min, max] rates swept"
    )

    @field_validator("bounds")
    @classmethod
    def _bounds(cls, value: Any) -> Any:
        if isinstance(value, list) and (len(value) != 2 or not 0 < value[0] <= value[1]):
            raise ValueError("bounds must be [low, high] with 0 < low <= high, or from_lr_find")
        return value

    @field_validator("lr_find_range")
    @classmethod
    def _range(cls, value: list[float]) -> list[float]:
        if len(value) != 2 or not 0 < value[0] < value[1]:
            raise ValueError("lr_find_range must be [min, max] with 0 < min < max")
        return value


class LossConfig(Section):
    name: str = Field(
        "cross_entropy",
        description="cross_entropy, balanced_softmax, logit_adjusted, ldam, class_balanced "
        "or a registered tenfold loss",
    )
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known_loss(cls, value: str) -> str:
        resolve_loss_name(value)
        return value


class DRWConfig(Section):
    """Deferred re-weighting (LDAM-DRW): class-balanced weights from the switch epoch on."""

    start_epoch: int | None = Field(None, ge=0, description="first re-weighted epoch (0-based)")
    start_fraction: float = Field(0.8, ge=0.0, le=1.0, description="else the switch at this share")
    beta: float = Field(0.9999, ge=0.0, lt=1.0, description="class-balanced weights' beta")


class CallbacksConfig(Section):
    drw: DRWConfig | None = Field(None, description="deferred re-weighting; null: off")


class PrecisionConfig(Section):
    """Mixed precision and XLA (docs/mixed-precision.md), set by tenfold.precision.configure."""

    policy: Literal["auto", "float32", "mixed_float16", "mixed_bfloat16", "grappler"] = Field(
        "float32", description="auto: time each candidate on the model and keep the fastest (docs/mixed-precision.md)"
    )
    jit_compile: bool | Literal["auto"] = Field("auto", description="XLA; auto: as Keras decides")
    probe_steps: int = Field(
        8, ge=1, le=1000, description="policy auto: timed training steps per candidate, more for a model whose float32 steps add up to under 1 s (docs/mixed-precision.md)"
    )


class TrainConfig(Section):
    epochs: int = Field(30, gt=0, le=1_000_000)
    max_parameters: int = Field(
        100_000_000, gt=0, description="refuse a model estimated above this many parameters"
    )
    verbose: Literal["auto", 0, 1, 2] = "auto"


class DistributeConfig(Section):
    """Where the run trains (docs/distributed.md): one device, or TensorFlow's / Keras'
    distributed engines. ``data.batch_size`` is the global batch, split over the replicas."""

    strategy: Literal["none", "mirrored", "multi_worker", "data_parallel"] = Field(
        "none", description="none: one device; mirrored: tf.distribute.MirroredStrategy over the "
        "local devices; multi_worker: tf.distribute.MultiWorkerMirroredStrategy from TF_CONFIG "
        "(tenfold train --worker I --workers host:port,...); data_parallel: "
        "keras.distribution.DataParallel on JAX"
    )
    devices: int | None = Field(
        None, gt=0, description="mirrored / data_parallel: use this many local devices; on a "
        "machine without accelerators, mirrored makes this many logical CPU devices; null: all"
    )
    lr_scaling: Literal["none", "linear"] = Field(
        "none", description="linear: learning rates times the number of replicas (Goyal et al. "
        "2017); none: as in the recipe (the same training as one device at the same global batch)"
    )
    coordinator: str | None = Field(
        None, description="data_parallel across processes: the coordinator's host:port "
        "(keras.distribution.initialize); null: one process"
    )
    processes: int | None = Field(None, gt=0, description="data_parallel: the number of processes")
    process_id: int | None = Field(None, ge=0, description="data_parallel: this process's id (0: chief)")

    @field_validator("coordinator")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None:
            host, _, port = value.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError("must be host:port, e.g. 10.0.0.1:1234")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DistributeConfig:
        multi = {k: getattr(self, k) for k in ("coordinator", "processes", "process_id")
                 if getattr(self, k) is not None}
        if multi and self.strategy != "data_parallel":
            raise ValueError(
                f"distribute.{next(iter(multi))} applies to strategy data_parallel (JAX processes), "
                f"not {self.strategy!r}; multi_worker reads its cluster from TF_CONFIG")
        if multi and len(multi) != 3:
            raise ValueError("distribute.coordinator, distribute.processes and distribute.process_id "
                             f"go together; received {', '.join(f'{k}={v!r}' for k, v in multi.items())}")
        if self.process_id is not None and self.processes is not None and self.process_id >= self.processes:
            raise ValueError(f"distribute.process_id={self.process_id} must be below "
                             f"distribute.processes={self.processes}")
        if self.devices is not None and self.strategy in ("none", "multi_worker"):
            raise ValueError(f"distribute.devices applies to mirrored and data_parallel, not {self.strategy!r}")
        return self


class PosthocConfig(Section):
    """Post-hoc long-tail corrections, reported beside the trained model (docs/long-tail.md)."""

    adjust_logits: bool = Field(False, description="logits − tau·log prior")
    tau: float | Literal["search"] = Field(
        1.0, description="of adjust_logits; search: chosen on the validation split"
    )
    tau_norm: bool = Field(False, description="classifier columns / ‖w‖^τ, τ searched on validation")
    crt: bool = Field(False, description="classifier re-training with class-balanced sampling")
    crt_epochs: int = Field(10, gt=0)
    crt_sampler: Literal["class_balanced", "square_root", "instance"] = "class_balanced"


class EvaluateConfig(Section):
    many: int = Field(40, ge=0, description="many-shot: more than this many training examples")
    few: int = Field(10, ge=0, description="few-shot: fewer than this many training examples")
    posthoc: PosthocConfig = PosthocConfig()


class Recipe(Section):
    name: str = "default"
    description: str = ""
    seed: int = Field(0, ge=0, le=2**32 - 1)
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    agc: AGCConfig = AGCConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    loss: LossConfig = LossConfig()
    callbacks: CallbacksConfig = CallbacksConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    precision: PrecisionConfig = PrecisionConfig()
    distribute: DistributeConfig = DistributeConfig()

    @model_validator(mode="after")
    def _model_size(self) -> Recipe:
        m = self.model
        estimate = m.parameter_estimate()
        if estimate > self.train.max_parameters:
            sizes = (f"model.hidden={m.hidden}" if m.name == "mlp"
                     else f"model.width={m.width}, model.blocks={m.blocks}")
            raise ValueError(
                f"model: the {m.name} of this recipe has at least {estimate:.3g} parameters "
                f"({sizes}), above train.max_parameters={self.train.max_parameters:.3g}; make it "
                "smaller or raise train.max_parameters"
            )
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _known(kind: str, value: str) -> str:
    choices = registry.list(kind)
    if value not in choices:
        raise ValueError(f"unknown {kind} {value!r};{registry.suggest(value, choices)} accepted: {', '.join(choices)}")
    return value


# ---------------------------------------------------------------------------- loading


def bundled_dir() -> Path:
    return Path(str(resources.files("tenfold") / "recipes"))


def bundled() -> dict[str, Path]:
    """Bundled recipe names → files."""
    return {p.stem: p for p in sorted(bundled_dir().glob("*.yaml"))}


def _fields_at(path: list[str]) -> list[str]:
    """Valid keys of the section reached by ``path`` (keys of the top level for [])."""
    model: Any = Recipe
    for key in path:
        field = model.model_fields.get(key)
        annotation = getattr(field, "annotation", None)
        # an optional section (``EchoConfig | None``): look into its section type
        options = [a for a in getattr(annotation, "__args__", ()) if isinstance(a, type)
                   and issubclass(a, BaseModel)]
        annotation = options[0] if len(options) == 1 else annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _format_error(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        loc = [str(p) for p in e["loc"]]
        key = ".".join(loc)
        if not loc:  # a check across sections: its message names the keys
            lines.append(e["msg"].removeprefix("Value error, ") + ".")
        elif e["type"] == "extra_forbidden":
            choices = _fields_at(loc[:-1])
            close = difflib.get_close_matches(loc[-1], choices, n=1, cutoff=0.5)
            hint = f" Did you mean {'.'.join(loc[:-1] + [close[0]])!r}?" if close else ""
            lines.append(f"unknown key {key!r}.{hint} Accepted here: {', '.join(choices)}.")
        else:
            value = e.get("input")
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"{key}: {msg} (received {value!r}).")
    return f"{source}: " + " ".join(lines)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b=c"`` → (["a", "b"], parsed YAML value of c)."""
    if "=" not in text:
        raise RecipeError(f"--set {text!r}: expected KEY=VALUE, e.g. --set train.epochs=5.")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise RecipeError(f"--set {text!r}: empty key part in {key!r}.")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise RecipeError(f"--set {text!r}: value {raw!r} is not valid YAML ({err.problem}).") from err
    return parts, value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``raw`` with each ``--set`` applied in order.

    An override that sets the model's source to a model tenfold does not build itself
    (``model.name=keras.applications.X``, ``model.path=...``, ``model.factory=...``) replaces
    the recipe's model: the other source keys and the small_resnet / mlp keys of the recipe
    are dropped (``model.options``, ``model.convert`` and ``model.remat`` stay).
    """
    for text in overrides:
        parts, value = parse_override(text)
        if (len(parts) == 2 and parts[0] == "model" and parts[1] in ("name", "path", "factory")
                and value is not None and value not in BUILT_IN_MODELS
                and isinstance(raw.get("model"), dict)):
            for key in ("name", "path", "factory", *SWITCH_KEYS):
                raw["model"].pop(key, None)
        _set_path(raw, parts, value, f"--set {text!r}")
    return raw


def read_raw(path: str | Path | None) -> tuple[dict[str, Any], str]:
    """The raw mapping of a recipe file or bundled recipe name (None: the default)."""
    if path is None:
        path = "default"
    files = bundled()
    text_path = Path(path)
    if str(path) in files and not text_path.exists():
        text_path = files[str(path)]
    if not text_path.is_file():
        near = registry.suggest(str(path), list(files))
        raise RecipeError(
            f"recipe {str(path)!r} is neither a file nor a bundled recipe.{near} "
            f"Bundled: {', '.join(files)}."
        )
    try:
        raw = yaml.safe_load(text_path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise RecipeError(f"{text_path}: not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise RecipeError(f"{text_path}: a recipe must be a mapping of sections, got {type(raw).__name__}.")
    return raw, str(text_path)


def _set_path(raw: dict[str, Any], parts: list[str], value: Any, text: str) -> None:
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise RecipeError(f"{text}: {part!r} is a value, not a section.")
        node = child
    node[parts[-1]] = value


def with_values(recipe: Recipe, values: dict[str, Any], *, source: str = "options") -> Recipe:
    """A copy of ``recipe`` with dotted keys set to already-typed ``values``, validated.

    Example:
    >>> with_values(load_recipe("tiny"), {"schedule.lr_find_steps": 30}).schedule.lr_find_steps
    30
    """
    raw = recipe.model_dump(mode="json")
    for key, value in values.items():
        _set_path(raw, key.split("."), value, key)
    try:
        return Recipe.model_validate(raw)
    except ValidationError as err:
        raise RecipeError(_format_error(err, source)) from None


def load_recipe(path: str | Path | None = None, overrides: list[str] | None = None) -> Recipe:
    """Read, override and validate a recipe.

    Args:
        path: a YAML file, a bundled recipe name (``tenfold recipes list``), or None for
            the default recipe.
        overrides: ``["key.sub=value", ...]``.

    Raises:
        RecipeError: one message naming the key, the value and what is accepted.

    Example:
    >>> load_recipe(None, ["train.epochs=2"]).train.epochs
    2
    """
    raw, source = read_raw(path)
    raw = apply_overrides(raw, list(overrides or []))
    try:
        return Recipe.model_validate(raw)
    except ValidationError as err:
        raise RecipeError(_format_error(err, source)) from None
