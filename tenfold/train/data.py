"""Stage "data": the splits of a run and its ``tf.data`` pipelines (recipe ``data:``).

The training dataset is assembled in the DESIGN.md order: long-tail profile → re-sampling
(``data.sampler``) → augmentation → echo (``data.echo``) → batch → prefetch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from tenfold import data as tf_data
from tenfold._tf import tensorflow
from tenfold.train.recipe import DataConfig, RecipeError


@dataclass(frozen=True)
class RunData:
    """The splits of a run, after the long-tail profile, and the training class counts."""

    splits: tf_data.Splits
    class_counts: list[int]

    @property
    def num_classes(self) -> int:
        return self.splits.num_classes


def build_data(d: DataConfig, *, seed: int) -> RunData:
    """Load and split the data set; long-tail the training split when asked."""
    try:
        splits = tf_data.load(
            d.name, validation_fraction=d.validation_fraction, test_fraction=d.test_fraction,
            seed=seed, image_size=tuple(d.image_size) if isinstance(d.image_size, list) else d.image_size,
        )
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        raise RecipeError(f"data.name: {err}") from err
    if d.channels is not None:
        splits = dataclasses.replace(splits, **{
            k: with_channels(getattr(splits, k), d.channels) for k in ("x_train", "x_val", "x_test")})
    if d.imbalance_factor is not None and d.imbalance_factor > 1:
        x, y, _ = tf_data.long_tailed(splits.x_train, splits.y_train, d.imbalance_factor, seed=seed)
        splits = dataclasses.replace(splits, x_train=x, y_train=y)
    return RunData(splits, splits.class_counts())


LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as tf.image.rgb_to_grayscale


def with_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """Images ``x`` (N, H, W, C) with ``channels`` channels: grey repeated to RGB, or RGB to
    grey by luma; unchanged when they already have them."""
    if x.ndim != 4:
        raise RecipeError(f"data.channels: the data are not images (shape {x.shape[1:]}); remove data.channels.")
    have = x.shape[-1]
    if have == channels:
        return x
    if have == 1 and channels == 3:
        return np.repeat(x, 3, axis=-1)
    if have == 3 and channels == 1:
        return np.tensordot(x, np.asarray(LUMA, x.dtype), axes=([-1], [0]))[..., None].astype(x.dtype)
    raise RecipeError(f"data.channels: cannot turn images of {have} channels into {channels}; accepted: 1 <-> 3.")


def steps_per_epoch(d: DataConfig, train_examples: int) -> int:
    """Optimizer steps in one epoch of the training dataset (with data.echo: of the echoed
    dataset; the mean for a fractional factor)."""
    n, batch, e = train_examples, d.batch_size, d.echo
    if e is not None and e.level == "batch":
        return max(1, round(math.ceil(n / batch) * e.factor))
    if e is not None:
        return max(1, math.ceil(round(n * e.factor) / batch))
    return max(1, math.ceil(n / batch))


def build_echo(d: DataConfig, *, seed: int) -> tf_data.Echo | None:
    """The ``tenfold.data.Echo`` of ``data.echo`` (None when off); its counter reports the
    fresh examples read."""
    e = d.echo
    if e is None:
        return None
    buffer = e.shuffle_buffer or (4 * d.batch_size if e.level == "example" else None)
    return tf_data.echo(e.factor, level=e.level, shuffle_buffer=buffer, seed=seed)


def _sample(ds: Any, d: DataConfig, class_counts: list[int], *, seed: int, epochs: int) -> Any:
    """Re-sample the unbatched training dataset by ``data.sampler`` (or shuffle it)."""
    if d.sampler is None:
        return ds.shuffle(sum(class_counts), seed=seed, reshuffle_each_iteration=True)
    passes = epochs if d.sampler == "progressive" else None
    return tf_data.resample(ds, class_counts, strategy=d.sampler, epochs=passes, seed=seed)


def _augment(ds: Any, d: DataConfig, *, seed: int) -> Any:
    shift = d.augment.random_translation
    if not shift:
        return ds
    tf = tensorflow("data augmentation")
    layer = keras.layers.RandomTranslation(shift, shift, fill_mode="constant", seed=seed)

    def augment(x: Any, y: Any) -> Any:
        return layer(x, training=True), y

    # augment per batch of 256 (vectorized), then unbatch to keep example-level order;
    # unbatch forgets the cardinality, so restate it (fit then knows the epoch length)
    count = int(ds.cardinality())
    out = ds.batch(256).map(augment, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
    return out.apply(tf.data.experimental.assert_cardinality(count)) if count >= 0 else out


def train_dataset(
    d: DataConfig, run_data: RunData, echo: tf_data.Echo | None, *, seed: int, epochs: int
) -> Any:
    """The training ``tf.data.Dataset`` of (image, label) batches, echoed by ``echo``."""
    tf = tensorflow("the trainer's input pipeline")
    x, y = run_data.splits.x_train, run_data.splits.y_train
    ds = tf.data.Dataset.from_tensor_slices((x, y.astype("int32")))
    ds = _sample(ds, d, run_data.class_counts, seed=seed, epochs=epochs)
    level = None if echo is None else echo.level
    placement = None if d.echo is None else d.echo.placement
    if level == "example" and placement == "before_augmentation":
        ds = ds.apply(echo)
    ds = _augment(ds, d, seed=seed)
    if level == "example" and placement == "after_augmentation":
        ds = ds.apply(echo)
    ds = ds.batch(d.batch_size)
    if level == "batch":
        ds = ds.apply(echo)
    return ds.prefetch(tf.data.AUTOTUNE)


def eval_dataset(d: DataConfig, x: np.ndarray, y: np.ndarray) -> Any:
    tf = tensorflow("the trainer's input pipeline")
    ds = tf.data.Dataset.from_tensor_slices((x, y.astype("int32")))
    return ds.batch(max(256, d.batch_size)).prefetch(tf.data.AUTOTUNE)


def fit_kwargs(d: DataConfig, steps: int) -> dict[str, Any]:
    """``progressive`` yields all epochs in one pass: Keras keeps the iterator when
    ``steps_per_epoch`` is given."""
    return {"steps_per_epoch": steps} if d.sampler == "progressive" else {}
