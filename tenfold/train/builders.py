"""Build each piece of a training run from a validated :class:`Recipe`.

One function per piece (data, datasets, model, schedule, optimizer, loss); techniques extend
the piece they touch. The training dataset is assembled in the DESIGN.md order:
long-tail profile → re-sampling → augmentation → echo → batch → prefetch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from tenfold import data as tf_data
from tenfold import models, registry, remat
from tenfold._tf import tensorflow
from tenfold.train import longtail
from tenfold.train.recipe import Recipe, RecipeError


@dataclass
class RunData:
    """The splits of a run, after the long-tail profile, and the training class counts."""

    splits: tf_data.Splits
    class_counts: list[int]
    echo: Any = None  # the tenfold.data.Echo of the training pipeline (data.echo), if any

    @property
    def num_classes(self) -> int:
        return self.splits.num_classes


def build_data(recipe: Recipe) -> RunData:
    """Load and split the data set; long-tail the training split when asked."""
    d = recipe.data
    try:
        splits = tf_data.load(
            d.name, validation_fraction=d.validation_fraction, test_fraction=d.test_fraction,
            seed=recipe.seed, image_size=d.image_size,
        )
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        raise RecipeError(f"data.name: {err}") from err
    if d.imbalance_factor is not None and d.imbalance_factor > 1:
        x, y, _ = tf_data.long_tailed(
            splits.x_train, splits.y_train, d.imbalance_factor, seed=recipe.seed
        )
        splits.x_train, splits.y_train = x, y
    return RunData(splits, splits.class_counts())


def steps_per_epoch(recipe: Recipe, run_data: RunData) -> int:
    """Optimizer steps in one epoch of the training dataset (with data.echo: of the echoed
    dataset; the mean for a fractional factor)."""
    n, batch, e = len(run_data.splits.y_train), recipe.data.batch_size, recipe.data.echo
    if e is not None and e.level == "batch":
        return max(1, round(math.ceil(n / batch) * e.factor))
    if e is not None:
        return max(1, math.ceil(round(n * e.factor) / batch))
    return max(1, math.ceil(n / batch))


def _augment(ds: Any, recipe: Recipe) -> Any:
    shift = recipe.data.augment.random_translation
    if not shift:
        return ds
    tf = tensorflow("data augmentation")
    layer = keras.layers.RandomTranslation(shift, shift, fill_mode="constant", seed=recipe.seed)

    def augment(x: Any, y: Any) -> Any:
        return layer(x, training=True), y

    # augment per batch of 256 (vectorized), then unbatch to keep example-level order;
    # unbatch forgets the cardinality, so restate it (fit then knows the epoch length)
    count = int(ds.cardinality())
    out = ds.batch(256).map(augment, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
    return out.apply(tf.data.experimental.assert_cardinality(count)) if count >= 0 else out


def train_dataset(recipe: Recipe, run_data: RunData) -> Any:
    """The training ``tf.data.Dataset`` of (image, label) batches."""
    tf = tensorflow("the trainer's input pipeline")
    x, y = run_data.splits.x_train, run_data.splits.y_train
    ds = tf.data.Dataset.from_tensor_slices((x, y.astype("int32")))
    ds = longtail.sample(ds, recipe, run_data)  # data.sampler: re-sampling, else a shuffle
    e = recipe.data.echo
    if e is not None:  # data.echo: before or after augmentation, or of batches
        buffer = e.shuffle_buffer or (4 * recipe.data.batch_size if e.level == "example" else None)
        run_data.echo = tf_data.echo(e.factor, level=e.level, shuffle_buffer=buffer, seed=recipe.seed)
    if e is not None and e.level == "example" and e.placement == "before_augmentation":
        ds = ds.apply(run_data.echo)
    ds = _augment(ds, recipe)
    if e is not None and e.level == "example" and e.placement == "after_augmentation":
        ds = ds.apply(run_data.echo)
    ds = ds.batch(recipe.data.batch_size)
    if e is not None and e.level == "batch":
        ds = ds.apply(run_data.echo)
    return ds.prefetch(tf.data.AUTOTUNE)


def eval_dataset(recipe: Recipe, x: np.ndarray, y: np.ndarray) -> Any:
    tf = tensorflow("the trainer's input pipeline")
    ds = tf.data.Dataset.from_tensor_slices((x, y.astype("int32")))
    return ds.batch(max(256, recipe.data.batch_size)).prefetch(tf.data.AUTOTUNE)


def build_model(recipe: Recipe, run_data: RunData) -> keras.Model:
    model = _build_model(recipe, run_data)
    if recipe.model.remat is not None:  # model.remat: recomputed segments (docs/recompute.md)
        try:
            model = remat.apply(model, recipe.model.remat)
        except (TypeError, ValueError) as err:
            raise RecipeError(f"model.remat: {err}") from err
    return model


def _build_model(recipe: Recipe, run_data: RunData) -> keras.Model:
    m = recipe.model
    shape, classes = run_data.splits.input_shape, run_data.num_classes
    if m.name == "mlp":
        model = models.mlp(shape, classes, hidden=m.hidden, activation=m.activation, dropout=m.dropout)
        return longtail.normed_head(model) if m.head == "normed" else model
    if len(shape) != 3:
        raise RecipeError(
            f"model.name: 'small_resnet' needs image inputs (H, W, C), the data has shape "
            f"{shape}; use model.name=mlp."
        )
    model = models.small_resnet(
        shape, classes, width=m.width, blocks=m.blocks, conv=m.conv, norm=m.norm,
        activation=m.activation,
    )
    return longtail.normed_head(model) if m.head == "normed" else model


def build_schedule(
    recipe: Recipe, steps: int, found: tuple[float, float] | None = None
) -> Any:
    """The learning rate: a float or a Keras LearningRateSchedule.

    ``found``: the ``(low, high)`` rates of an LR range test (``schedule.bounds: from_lr_find``).
    """
    s, lr = recipe.schedule, recipe.optimizer.learning_rate
    if s.name in ("cyclical", "one_cycle"):
        from tenfold.train import cyclical

        return cyclical.build_schedule(recipe, steps, found)
    if found is not None:
        lr = found[1]
    total = steps * recipe.train.epochs
    if s.name == "constant":
        return lr
    warmup = int(round(s.warmup_epochs * steps))
    if warmup >= total:
        raise RecipeError(
            f"schedule.warmup_epochs: {s.warmup_epochs} epochs of warm-up leave no training "
            f"in train.epochs={recipe.train.epochs}."
        )
    if warmup:
        return keras.optimizers.schedules.CosineDecay(
            0.0, total - warmup, alpha=s.alpha, warmup_target=lr, warmup_steps=warmup
        )
    return keras.optimizers.schedules.CosineDecay(lr, total, alpha=s.alpha)


def build_optimizer(recipe: Recipe, learning_rate: Any) -> keras.optimizers.Optimizer:
    o = recipe.optimizer
    kwargs = dict(o.options)
    if o.weight_decay is not None:
        kwargs["weight_decay"] = o.weight_decay
    names = {n.lower(): n for n in registry.list("optimizers")}
    try:
        if o.name.lower() in names:
            cls = registry.get("optimizers", names[o.name.lower()])
            optimizer = cls(learning_rate=learning_rate, **kwargs)
        else:
            config = {"class_name": o.name, "config": {"learning_rate": learning_rate, **kwargs}}
            if not isinstance(learning_rate, (int, float)):
                config["config"]["learning_rate"] = keras.optimizers.schedules.serialize(learning_rate)
            optimizer = keras.optimizers.get(config)
    except (TypeError, ValueError) as err:
        raise RecipeError(f"optimizer: cannot build {o.name!r} with {kwargs}: {err}") from err
    return wrap_agc(recipe, optimizer)


# the models name their head "classifier"; NFNets leaves the final classifier unclipped
CLASSIFIER_PATTERN = r"(^|/)classifier/"


def wrap_agc(recipe: Recipe, optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """``agc.clipping`` set → the optimizer wrapped in ``tenfold.optimizers.AGC``."""
    a = recipe.agc
    if a.clipping is None:
        return optimizer
    from tenfold.optimizers import AGC

    try:
        return AGC(optimizer, clipping=a.clipping, epsilon=a.epsilon,
                   exclude=[CLASSIFIER_PATTERN, *a.exclude])
    except (TypeError, ValueError) as err:
        raise RecipeError(f"agc: {err}") from err


def build_loss(recipe: Recipe, run_data: RunData) -> keras.losses.Loss:
    return longtail.build_loss(recipe, run_data)  # loss.name aliases, callbacks.drw
