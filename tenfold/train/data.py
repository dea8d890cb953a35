"""Stage "data": the splits of a run and its ``tf.data`` pipelines (recipe ``data:``).

The training dataset is assembled in the DESIGN.md order: long-tail profile → re-sampling
(``data.sampler``) → augmentation → echo (``data.echo``) → batch → prefetch.

It is the epochs ``initial_epoch`` … ``train.epochs - 1`` one after another, exactly
:func:`steps_per_epoch` batches each (``fit`` gets ``steps_per_epoch``, :func:`fit_kwargs`),
and everything random in epoch ``k`` — the shuffle or re-sampling
(:func:`tenfold.data.stream.epoch_order`), the augmentation (stateless draws keyed by
``(seed, k, position)``), the echo — is a function of ``(recipe seed, k)`` only: a run
resumed at epoch ``k`` trains on what the uninterrupted run trained on.

Two paths: digits, ``.npz`` files and TFDS names are loaded into memory
(:func:`tenfold.data.load`); an image folder is *streamed*: listed into file splits
(:func:`tenfold.data.stream_splits`: class counts from the listing, stratified by file, bad
headers skipped or, with ``data.on_bad_file: fail``, named) that the run directory keeps in
``splits.json``, and read, decoded and resized batch by batch
(:func:`tenfold.data.image_pipeline`), never loaded whole.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tenfold import data as tf_data
from tenfold._tf import tensorflow
from tenfold.data.stream import epoch_order
from tenfold.train.recipe import DataConfig, RecipeError

SPLITS_FILE = "splits.json"
STREAM_IMAGE_SIZE = 64  # an image folder's default data.image_size


@dataclass(frozen=True)
class RunData:
    """The splits of a run, after the long-tail profile, and the training class counts.

    ``splits``: arrays in memory, or ``files``: the file splits of a streamed image folder
    (then ``splits`` is None).
    """

    splits: tf_data.Splits | None
    class_counts: list[int]
    files: tf_data.FileSplits | None = None

    @property
    def num_classes(self) -> int:
        return self.files.num_classes if self.files is not None else self.splits.num_classes

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.files.input_shape if self.files is not None else self.splits.input_shape

    @property
    def class_names(self) -> list[str]:
        return list(self.files.class_names if self.files is not None else self.splits.class_names)

    @property
    def source(self) -> str:
        return self.files.root if self.files is not None else self.splits.source

    def examples(self, split: str) -> int:
        """Examples of ``split`` (``"train"``, ``"val"``, ``"test"``)."""
        if self.files is not None:
            return len(self.files.labels(split))
        return int(len({"train": self.splits.y_train, "val": self.splits.y_val, "test": self.splits.y_test}[split]))


def is_streamed(d: DataConfig) -> bool:
    """Whether ``data.name`` is an image folder (the streaming path)."""
    return os.path.isdir(d.name)


def build_data(d: DataConfig, *, seed: int, splits_file: Path | None = None) -> RunData:
    """Load and split the data set; long-tail the training split when asked.

    An image folder is listed, not loaded; ``splits_file``: an interrupted run's
    ``splits.json``, read back when it exists (the same files as before).
    """
    if is_streamed(d):
        return _stream_data(d, seed=seed, splits_file=splits_file)
    if d.on_bad_file != "skip":
        raise RecipeError(f"data.on_bad_file: applies to an image folder; {d.name!r} is not one.")
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


def _stream_data(d: DataConfig, *, seed: int, splits_file: Path | None) -> RunData:
    if d.echo is not None and d.echo.level == "batch":
        raise RecipeError("data.echo.level: an image folder is echoed per example (after decoding or "
                          "after augmentation), received 'batch'.")
    if d.sampler == "progressive":
        raise RecipeError("data.sampler: 'progressive' needs the data in memory; an image folder takes "
                          "class_balanced, square_root or instance.")
    size = d.image_size if d.image_size is not None else STREAM_IMAGE_SIZE
    try:
        files = tf_data.stream_splits(
            d.name, image_size=tuple(size) if isinstance(size, list) else size,
            validation_fraction=d.validation_fraction, test_fraction=d.test_fraction, seed=seed,
            imbalance_factor=d.imbalance_factor if d.imbalance_factor and d.imbalance_factor > 1 else None,
            channels=d.channels or 3, on_bad_file=d.on_bad_file,
            splits_file=splits_file if splits_file is not None and splits_file.is_file() else None,
        )
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        raise RecipeError(f"data.name: {err}") from err
    return RunData(None, files.class_counts("train"), files)


def data_notes(run_data: RunData) -> list[str]:
    """The report's lines on the data path: streamed files and the bad files skipped."""
    f = run_data.files
    if f is None:
        return []
    notes = [f"data: streamed from the image folder {f.root} ({f.layout}; splits in {SPLITS_FILE}), "
             f"images decoded and resized to {f.image_size[0]}x{f.image_size[1]}x{f.channels} batch by batch."]
    if f.bad_files:
        shown = "; ".join(f"{p} ({why})" for p, why in f.bad_files[:5])
        notes.append(f"data: {len(f.bad_files)} bad file(s) skipped (unreadable header): {shown}"
                     f"{' ...' if len(f.bad_files) > 5 else ''}.")
    return notes


def _stream(run_data: RunData, split: str, d: DataConfig, *, seed: int, training: bool,
            echo: tf_data.Echo | None = None, epochs: tuple[int, int] | None = None) -> Any:
    f = run_data.files
    placement = "decode" if d.echo is not None and d.echo.placement == "before_augmentation" else "augment"
    try:
        return tf_data.image_pipeline(
            f.paths(split), f.labels(split), image_size=tuple(f.image_size),
            batch_size=d.batch_size if training else max(256, d.batch_size), training=training,
            augment=training and d.augment.random_translation > 0, echo=echo, echo_at=placement,
            seed=seed, on_bad_file="skip", channels=f.channels, sampling=d.sampler if training else None,
            class_counts=run_data.class_counts if training and d.sampler else None,
            **({} if epochs is None else {
                "initial_epoch": epochs[0], "epochs": epochs[1],
                "steps_per_epoch": steps_per_epoch(d, run_data.examples(split))}),
        ).dataset
    except (TypeError, ValueError) as err:
        raise RecipeError(f"data: {err}") from err


def eval_split(d: DataConfig, run_data: RunData, split: str) -> Any:
    """The evaluation ``tf.data.Dataset`` of ``split`` (``"val"``, ``"test"``), in order."""
    if run_data.files is not None:
        return _stream(run_data, split, d, seed=0, training=False)
    s = run_data.splits
    x, y = {"val": (s.x_val, s.y_val), "test": (s.x_test, s.y_test)}[split]
    return eval_dataset(d, x, y)


def steps_per_epoch(d: DataConfig, train_examples: int) -> int:
    """Optimizer steps in one epoch of the training dataset (with data.echo: of the echoed
    dataset; the mean for a fractional factor). A streamed folder's pipeline drops the last,
    partial batch."""
    n, batch, e = train_examples, d.batch_size, d.echo
    if is_streamed(d):
        return max(1, round(n * (e.factor if e is not None else 1.0)) // batch)
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


CHUNK = 256  # examples gathered and augmented per vectorized step


def _translate(tf: Any, images: Any, shift: float, seed: Any) -> Any:
    """Shift each image by up to ``shift`` of its height and width (uniform, bilinear, zeros
    outside), as ``keras.layers.RandomTranslation(shift, shift, fill_mode="constant")``
    but drawn statelessly from ``seed``."""
    shape = tf.shape(images)
    height, width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    u = tf.random.stateless_uniform([shape[0], 2], seed=seed, minval=-shift, maxval=shift)
    one, zero = tf.ones([shape[0]]), tf.zeros([shape[0]])
    # output pixel (y, x) reads input pixel (y - dy, x - dx)
    transforms = tf.stack([one, zero, -u[:, 1] * width, zero, one, -u[:, 0] * height, zero, zero], axis=1)
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=shape[1:3],
        fill_value=tf.constant(0, images.dtype), interpolation="BILINEAR", fill_mode="CONSTANT")
    return tf.cast(out, images.dtype)


def _augment(ds: Any, d: DataConfig, *, seed: int, epoch: Any) -> Any:
    """``data.augment`` on the unbatched examples of epoch ``epoch``: chunk ``j`` of
    :data:`CHUNK` examples is drawn from the stateless seed ``(seed, epoch·2³² + j)``."""
    shift = d.augment.random_translation
    if not shift:
        return ds
    tf = tensorflow("data augmentation")
    base = tf.constant(seed, tf.int64)

    @tf.autograph.experimental.do_not_convert
    def augment(j: Any, batch: Any) -> Any:
        x, y = batch
        return _translate(tf, x, float(shift), tf.stack([base, epoch * 2**32 + j])), y

    return ds.batch(CHUNK).enumerate().map(augment, num_parallel_calls=tf.data.AUTOTUNE).unbatch()


def train_dataset(
    d: DataConfig, run_data: RunData, echo: tf_data.Echo | None, *, seed: int, epochs: int,
    initial_epoch: int = 0,
) -> Any:
    """The training ``tf.data.Dataset`` of (image, label) batches, echoed by ``echo``: the
    epochs ``initial_epoch`` … ``epochs - 1``, :func:`steps_per_epoch` batches each, epoch
    ``k`` a function of ``(seed, k)`` only (see the module docstring)."""
    if run_data.files is not None:
        return _stream(run_data, "train", d, seed=seed, training=True, echo=echo,
                       epochs=(initial_epoch, epochs))
    tf = tensorflow("the trainer's input pipeline")
    x, y = run_data.splits.x_train, run_data.splits.y_train.astype("int32")
    images, labels = tf.constant(x), tf.constant(y)
    steps, counts = steps_per_epoch(d, len(y)), run_data.class_counts
    level = None if echo is None else echo.level
    placement = None if d.echo is None else d.echo.placement

    def order(epoch: Any) -> np.ndarray:
        return epoch_order(y, counts, d.sampler, seed=seed, epoch=int(epoch), epochs=epochs)

    @tf.autograph.experimental.do_not_convert  # plain tf.data code
    def one_epoch(epoch: Any) -> Any:
        index = tf.numpy_function(order, [epoch], tf.int64, stateful=False)
        index.set_shape([len(y)])
        ds = tf.data.Dataset.from_tensor_slices(index).batch(CHUNK).map(
            lambda i: (tf.gather(images, i), tf.gather(labels, i))).unbatch()
        if level == "example" and placement == "before_augmentation":
            ds = ds.apply(echo)
        ds = _augment(ds, d, seed=seed, epoch=epoch)
        if level == "example" and placement == "after_augmentation":
            ds = ds.apply(echo)
        ds = ds.batch(d.batch_size)
        if level == "batch":
            ds = ds.apply(echo)
        return ds.repeat().take(steps)  # a fractional echo short of batches: the epoch starts over

    ds = tf.data.Dataset.range(initial_epoch, max(epochs, initial_epoch)).flat_map(one_epoch)
    return ds.prefetch(tf.data.AUTOTUNE)


def eval_dataset(d: DataConfig, x: np.ndarray, y: np.ndarray) -> Any:
    tf = tensorflow("the trainer's input pipeline")
    ds = tf.data.Dataset.from_tensor_slices((x, y.astype("int32")))
    return ds.batch(max(256, d.batch_size)).prefetch(tf.data.AUTOTUNE)


def fit_kwargs(d: DataConfig, steps: int) -> dict[str, Any]:
    """The training dataset holds all epochs in one pass: Keras keeps one iterator across
    epochs when ``steps_per_epoch`` is given."""
    return {"steps_per_epoch": steps}
