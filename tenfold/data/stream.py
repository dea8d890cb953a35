"""Streaming ``tf.data`` pipelines over image files: nothing is read before it is needed.

The training pipeline, in order (Choi et al. 2019 for where echo goes):

1. the file list (paths and labels: strings and ints, the only thing held in memory),
   re-sampled by class when asked (:func:`tenfold.data.resample` on the list) and shuffled
   with a seed, afresh each epoch;
2. read and decode in parallel (``tf.io.read_file``; JPEG files with
   ``tf.image.decode_and_crop_jpeg``, which decodes only the random crop's window, others
   with ``tf.io.decode_image(..., expand_animations=False)``), to ``channels`` channels;
3. echo after decoding (``echo_at="decode"``: each copy is cropped and flipped afresh);
4. augmentation: random-resized crop (``tf.image.sample_distorted_bounding_box``, the
   Inception rule) resized to ``image_size``, and a random horizontal flip;
5. echo after augmentation (``echo_at="augment"``: finished examples are repeated);
6. batch, prefetch.

Given ``epochs`` (the trainer does), the training dataset is the epochs ``initial_epoch`` …
``epochs - 1`` one after another, ``steps_per_epoch`` batches each, and everything random in
epoch ``k`` — the order or re-sampling of the files, the crops, the flips, the echo — is a
function of ``(seed, k)`` only: a run resumed at epoch ``k`` reads what the uninterrupted
run read (:func:`epoch_order`; crops and flips drawn by stateless ops keyed by
``(seed, k, position)``).

An unreadable or corrupt file never stops an epoch: the element is dropped
(``Dataset.ignore_errors``) and counted (:attr:`ImagePipeline.skipped`). With
``on_bad_file="fail"`` the files' headers are checked before the pipeline is returned and
the first bad one raises a ValueError naming it. Evaluation pipelines decode and resize
(no crop), in file order.

References:
    Choi et al. 2019, "Faster Neural Network Training with Data Echoing",
    https://arxiv.org/abs/1907.05550;
    Szegedy et al. 2015, "Going Deeper with Convolutions" (random-resized crop).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tenfold import _validate as v
from tenfold._tf import tensorflow
from tenfold.data.echo import Echo, FreshExampleCounter
from tenfold.data.echo import echo as make_echo
from tenfold.data.files import MAX_PIXELS, ON_BAD_FILE, TfdsSplits, _tfds, scan_files
from tenfold.data.resample import STRATEGIES, resample, target_distribution

ECHO_AT = ("decode", "augment")


def epoch_order(
    labels: Sequence[int] | np.ndarray, class_counts: Sequence[int] | None, strategy: str | None,
    *, seed: int, epoch: int, epochs: int,
) -> np.ndarray:
    """The example indices of epoch ``epoch``: a function of ``(seed, epoch)`` only.

    ``strategy`` None: a permutation of ``range(len(labels))``. Otherwise ``len(labels)``
    draws re-sampled by class as :func:`tenfold.data.resample` does (the classes drawn with
    :func:`tenfold.data.target_distribution`'s probabilities — ``"progressive"`` those of
    ``epoch`` of ``epochs`` —, each class's examples in an order of their own, cycled
    when the class is drawn more often than it has examples).

    Example:
    >>> a = epoch_order([0, 0, 1], None, None, seed=1, epoch=2, epochs=3)
    >>> sorted(a.tolist()), a.tolist() == epoch_order([0, 0, 1], None, None, seed=1, epoch=2, epochs=3).tolist()
    ([0, 1, 2], True)
    """
    labels = np.asarray(labels, "int64").reshape(-1)
    rng = np.random.default_rng([int(seed), int(epoch)])
    if strategy is None:
        return rng.permutation(len(labels))
    p = target_distribution(class_counts, strategy, epoch=int(epoch), epochs=int(epochs))
    drawn = rng.choice(len(p), size=len(labels), p=p / p.sum())
    order = np.empty(len(labels), "int64")
    for c in range(len(p)):
        slots = np.flatnonzero(drawn == c)
        members = rng.permutation(np.flatnonzero(labels == c))
        if len(slots):
            if not len(members):
                raise ValueError(f"class {c} has no example but class_counts gives it {class_counts[c]}.")
            order[slots] = np.resize(members, len(slots))
    return order


def _epoch_seeds(tf: Any, seed: int, epoch: Any, stages: Sequence[int]) -> Any:
    """An endless dataset of stateless seeds, ``2·len(stages)`` int64 per element: for element
    ``i`` and each stage ``s``, ``(seed, (8·epoch + s)·2³² + i)``."""
    base = tf.constant(int(seed), tf.int64)

    def seeds(i: Any) -> Any:
        return tf.concat([tf.stack([base, (epoch * 8 + s) * 2**32 + i]) for s in stages], axis=0)

    return tf.data.Dataset.counter().map(seeds)


@dataclass
class ImagePipeline:
    """A pipeline and its counters.

    ``dataset`` yields ``(images, labels)`` batches: float32 images in [0, 1] of shape
    ``(batch, height, width, channels)`` and int32 labels. The counters count what the
    pipeline has *read* so far (prefetched elements included): exact once an epoch ends.
    """

    dataset: Any
    files_read: FreshExampleCounter
    images_decoded: FreshExampleCounter
    echo: Echo | None = None

    @property
    def skipped(self) -> int:
        """Files dropped as unreadable (read minus decoded; exact at the end of an epoch)."""
        return self.files_read.value - self.images_decoded.value

    @property
    def fresh_examples(self) -> int:
        """Distinct decoded images handed on (without the echo's copies)."""
        return self.images_decoded.value


def _read_file(tf: Any, path: Any) -> Any:
    """The reader: one file's bytes (a seam for tests that count reads)."""
    return tf.io.read_file(path)


def _crop_window(tf: Any, shape: Any, scale: tuple[float, float], ratio: tuple[float, float], seed: Any) -> Any:
    """A random-resized-crop window ``(offset_y, offset_x, height, width)`` of an image."""
    box = tf.zeros([1, 0, 4], tf.float32)
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape, box, seed=seed, min_object_covered=0.0, aspect_ratio_range=ratio,
        area_range=scale, max_attempts=10, use_image_if_no_bounding_boxes=True,
    )
    return tf.stack([begin[0], begin[1], size[0], size[1]])


def _decode(tf: Any, data: Any, channels: int) -> Any:
    return tf.io.decode_image(data, channels=channels, expand_animations=False)


@dataclass(frozen=True)
class _Spec:
    image_size: tuple[int, int]
    channels: int
    scale: tuple[float, float]
    ratio: tuple[float, float]


def _decode_crop(tf: Any, data: Any, spec: _Spec, seed: Any) -> Any:
    """Decoded random crop: JPEG windows decoded alone, other formats decoded then cut."""

    def jpeg() -> Any:
        shape = tf.image.extract_jpeg_shape(data)
        window = _crop_window(tf, shape, spec.scale, spec.ratio, seed)
        return tf.image.decode_and_crop_jpeg(data, window, channels=spec.channels)

    def other() -> Any:
        image = _decode(tf, data, spec.channels)
        w = _crop_window(tf, tf.shape(image), spec.scale, spec.ratio, seed)
        return tf.image.crop_to_bounding_box(image, w[0], w[1], w[2], w[3])

    return tf.cond(tf.io.is_jpeg(data), jpeg, other)


def _finish(tf: Any, image: Any, spec: _Spec, flip_seed: Any | None) -> Any:
    """Resize to ``image_size`` as float32 in [0, 1]; flip when ``flip_seed`` is given."""
    image = tf.image.resize(image, spec.image_size, antialias=False) / 255.0  # float32 out
    if flip_seed is not None:
        image = tf.image.stateless_random_flip_left_right(image, flip_seed)
    image.set_shape([*spec.image_size, spec.channels])
    return image


def _crop_resized(tf: Any, image: Any, window: Any, spec: _Spec, flip_seed: Any) -> Any:
    """The ``window`` of ``image`` resized to ``image_size`` (bilinear, corner pixels on
    corner pixels), float32 in [0, 1], flipped by ``flip_seed``.

    ``tf.image.crop_and_resize`` reads only the pixels the output samples: cutting the
    window out first copies it (2.1 ms for 1100² of a 1280² RGB image on one core, against
    0.56 ms for both steps here), which took most of what echo after decoding saves.
    """
    size = tf.cast(tf.shape(image)[:2] - 1, tf.float32)
    size = tf.maximum(size, 1.0)
    w = tf.cast(window, tf.float32)
    box = tf.stack([w[0] / size[0], w[1] / size[1], (w[0] + w[2] - 1) / size[0], (w[1] + w[3] - 1) / size[1]])
    image = tf.image.crop_and_resize(image[None], box[None], [0], spec.image_size)[0] / 255.0
    image = tf.image.stateless_random_flip_left_right(image, flip_seed)
    image.set_shape([*spec.image_size, spec.channels])
    return image


def _make_spec(image_size: Any, channels: Any, crop_scale: Any, crop_ratio: Any) -> _Spec:
    size = v.int_or_ints("image_size", image_size, low=1, length=2)
    size = (size, size) if isinstance(size, int) else tuple(size)
    channels = v.choice("channels", v.integer("channels", channels), (1, 3))
    low, high = (v.fraction(f"crop_scale[{i}]", s, open_low=True) for i, s in enumerate(crop_scale))
    v.ordered("crop_scale[0]", low, "crop_scale[1]", high, strict=False)
    r_low, r_high = (v.positive(f"crop_ratio[{i}]", r) for i, r in enumerate(crop_ratio))
    v.ordered("crop_ratio[0]", r_low, "crop_ratio[1]", r_high, strict=False)
    return _Spec(size, channels, (low, high), (r_low, r_high))


def _check_files(files: Any, labels: Any) -> tuple[list[str], list[int]]:
    if isinstance(files, (str, bytes)) or not isinstance(files, Sequence):
        raise TypeError(f"files must be a list of paths, received {files!r} of type {type(files).__name__}.")
    if not files:
        raise ValueError("files must hold at least one path, received an empty list.")
    files = [v.string(f"files[{i}]", os.fspath(f)) for i, f in enumerate(files)]
    return files, v.integers("labels", labels, low=0, length=len(files))


def _as_echo(echo: Any, seed: int, batch_size: int) -> Echo | None:
    if echo is None or isinstance(echo, Echo):
        return echo
    factor = v.number("echo", echo, low=1)
    return None if factor == 1 else make_echo(factor, shuffle_buffer=4 * batch_size, seed=seed)


def image_pipeline(
    files: Sequence[str],
    labels: Sequence[int],
    *,
    image_size: int | Sequence[int],
    batch_size: int,
    training: bool,
    augment: bool = True,
    echo: float | Echo | None = None,
    echo_at: str = "decode",
    seed: int = 0,
    on_bad_file: str = "skip",
    channels: int = 3,
    sampling: str | None = None,
    class_counts: Sequence[int] | None = None,
    crop_scale: Sequence[float] = (0.08, 1.0),
    crop_ratio: Sequence[float] = (3 / 4, 4 / 3),
    num_parallel_calls: int | None = None,
    prefetch: int | None = None,
    max_pixels: int = MAX_PIXELS,
    epochs: int | None = None,
    initial_epoch: int = 0,
    steps_per_epoch: int | None = None,
) -> ImagePipeline:
    """A streaming ``tf.data`` pipeline of ``(images, labels)`` batches over image files.

    Args:
        files: list of image paths (any format ``tf.io.decode_image`` reads: JPEG, PNG,
            BMP, GIF's first frame).
        labels: list of int. The class of each file.
        image_size: int or (height, width) of the images produced.
        batch_size: int. Examples per batch (training drops the last, partial batch).
        training: bool. Shuffle (seeded, afresh each epoch), augment and echo; otherwise
            files in order, decoded and resized.
        augment: bool. Random-resized crop (``crop_scale``, ``crop_ratio``) and a random
            horizontal flip (training only); without it, images are only resized.
        echo: optional echo factor (a float >= 1: ``tenfold.data.echo(e, shuffle_buffer=
            4·batch_size, seed=seed)``) or an :class:`~tenfold.data.Echo` (training only).
        echo_at: ``"decode"`` (copies are augmented afresh) or ``"augment"``.
        seed: int. Seed of the shuffle, the crops, the flips and the echo.
        on_bad_file: ``"skip"`` (drop and count) or ``"fail"`` (header check now, a
            ValueError naming the first bad file).
        channels: 1 or 3. Every image is decoded to this many channels.
        sampling: optional re-sampling strategy of :func:`tenfold.data.resample`
            (``"class_balanced"``, ``"square_root"``, ``"instance"``), applied to the file
            list with ``class_counts`` (only paths are held in memory).
        class_counts: list of int, required with ``sampling``.
        num_parallel_calls: readers in parallel (default ``tf.data.AUTOTUNE``).
        prefetch: batches prefetched (default ``tf.data.AUTOTUNE``).
        max_pixels: int. With ``on_bad_file="fail"``, larger images are refused.
        epochs: optional int (training only). The dataset is then epochs ``initial_epoch``
            … ``epochs - 1`` in one pass, each ``steps_per_epoch`` batches (default: the
            files times the echo factor over ``batch_size``; an epoch short of batches, by
            skipped files or a fractional echo, starts over), each epoch's order,
            re-sampling (``"progressive"`` too), crops, flips and echo a function of
            ``(seed, epoch)`` only (:func:`epoch_order`): fit it with ``steps_per_epoch``
            and ``initial_epoch``, and a resumed run sees what the uninterrupted one saw.
            Without it, one pass re-randomized on every iteration.
        initial_epoch: int. The first epoch (with ``epochs``).
        steps_per_epoch: optional int. Batches per epoch (with ``epochs``).

    Returns:
        An :class:`ImagePipeline` (``.dataset`` for ``fit``, counters of files read,
        images decoded and skipped).

    Example:
    >>> import tempfile; from PIL import Image
    >>> d = tempfile.mkdtemp()
    >>> paths = [os.path.join(d, f"{i}.jpg") for i in range(4)]
    >>> for p in paths: Image.new("RGB", (40, 30), "red").save(p)
    >>> pipe = image_pipeline(paths, [0, 1, 0, 1], image_size=16, batch_size=2, training=True)
    >>> [tuple(x.shape) for x, _ in pipe.dataset], pipe.files_read.value
    ([(2, 16, 16, 3), (2, 16, 16, 3)], 4)
    """
    tf = tensorflow("tenfold.data.image_pipeline")
    files, labels = _check_files(files, labels)
    spec = _make_spec(image_size, channels, crop_scale, crop_ratio)
    batch_size = v.integer("batch_size", batch_size, low=1)
    training = v.boolean("training", training)
    augment = v.boolean("augment", augment)
    v.choice("echo_at", echo_at, ECHO_AT)
    seed = v.integer("seed", seed)
    v.choice("on_bad_file", on_bad_file, ON_BAD_FILE)
    if on_bad_file == "fail":
        scan_files(files, on_bad_file="fail", max_pixels=max_pixels)
    echoing = _as_echo(echo, seed, batch_size) if training else None
    parallel = tf.data.AUTOTUNE if num_parallel_calls is None else v.integer("num_parallel_calls", num_parallel_calls, low=1)
    prefetch = tf.data.AUTOTUNE if prefetch is None else v.integer("prefetch", prefetch, low=0)
    by_epoch = training and v.integer("epochs", epochs, low=1, allow_none=True) is not None
    if sampling is not None and training:
        v.choice("sampling", sampling, [s for s in STRATEGIES if by_epoch or s != "progressive"])
        if class_counts is None:
            raise ValueError(f"class_counts is required with sampling={sampling!r}, received None.")
    files_read, decoded = FreshExampleCounter(), FreshExampleCounter()
    augmenting = training and augment
    crop_now = augmenting and not (echoing is not None and echo_at == "decode")
    mode = "crop" if crop_now else ("full" if augmenting else "resized")
    counters = (files_read, decoded)

    def one_pass(ds: Any, epoch: Any = None) -> Any:
        ds = _decoded(tf, ds, spec, seed, mode, parallel, training, counters, epoch=epoch).ignore_errors()
        stages = _Stages(spec, seed, echoing, echo_at, augmenting, crop_now, parallel, epoch)
        return _after_decode(tf, ds, stages, batch_size, training)

    paths, classes = tf.constant(files), tf.constant(labels, tf.int64)
    if by_epoch:
        initial_epoch = v.integer("initial_epoch", initial_epoch, low=0)
        factor = 1.0 if echoing is None else echoing.factor
        steps = v.integer("steps_per_epoch", steps_per_epoch, low=1, allow_none=True) or max(
            1, round(len(files) * factor) // batch_size)

        def order(epoch: Any) -> np.ndarray:
            return epoch_order(labels, class_counts, sampling, seed=seed, epoch=int(epoch), epochs=epochs)

        @tf.autograph.experimental.do_not_convert  # plain tf.data code
        def one_epoch(epoch: Any) -> Any:
            index = tf.numpy_function(order, [epoch], tf.int64, stateful=False)
            index.set_shape([len(files)])
            ds = tf.data.Dataset.from_tensor_slices(index).map(lambda i: (tf.gather(paths, i), tf.gather(classes, i)))
            return one_pass(ds, epoch).repeat().take(steps)  # short of batches: the epoch starts over

        ds = tf.data.Dataset.range(initial_epoch, max(epochs, initial_epoch)).flat_map(one_epoch)
        return ImagePipeline(ds.prefetch(prefetch), files_read, decoded, echoing)
    ds = tf.data.Dataset.from_tensor_slices((paths, classes))
    if sampling is not None and training:
        ds = resample(ds, class_counts, strategy=sampling, seed=seed)
    elif training:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    return ImagePipeline(one_pass(ds).prefetch(prefetch), files_read, decoded, echoing)


@dataclass(frozen=True)
class _Stages:
    """What follows decoding: echo before and/or after augmentation."""

    spec: _Spec
    seed: int
    echoing: Echo | None
    echo_at: str
    augmenting: bool
    cropped: bool
    parallel: int
    epoch: Any = None  # an epoch tensor: its random draws keyed by (seed, epoch)


def _after_decode(tf: Any, ds: Any, st: _Stages, batch_size: int, training: bool) -> Any:
    """Echo (after decoding), augment, echo (after augmentation), batch."""
    if st.echoing is not None and st.echo_at == "decode":
        ds = ds.apply(st.echoing)
    if st.augmenting:
        ds = _augmented(tf, ds, st.spec, st.seed, cropped=st.cropped, parallel=st.parallel, epoch=st.epoch)
    if st.echoing is not None and st.echo_at == "augment":
        ds = ds.apply(st.echoing)
    return ds.batch(batch_size, drop_remainder=training, num_parallel_calls=st.parallel)


def _decoded(
    tf: Any, ds: Any, spec: _Spec, seed: int, mode: str, parallel: int, training: bool, counters: Any,
    *, epoch: Any = None,
) -> Any:
    """Read and decode in parallel: ``mode`` ``"crop"`` (a random crop's window), ``"full"``
    (the whole image, augmented later) or ``"resized"`` (resized to ``image_size`` now).

    ``epoch``: a tensor keys the crops by ``(seed, epoch, position)`` and keeps the order
    (a resumable epoch); None draws them afresh each iteration, in any order when training.
    ``counters`` (files read, images decoded) are counted inside the parallel map: a
    separate sequential counting stage costs a third of the throughput on large images.
    """
    read_count, decoded_count = (c.variable for c in counters)

    def load(element: Any, pair: Any) -> Any:
        path, label = element
        with tf.control_dependencies([read_count.assign_add(1)]):
            data = _read_file(tf, path)
        if mode == "crop":
            image = _decode_crop(tf, data, spec, pair)
        else:
            image = _decode(tf, data, spec.channels)
            image.set_shape([None, None, spec.channels])
            if mode == "resized":
                image = _finish(tf, image, spec, None)
        with tf.control_dependencies([image]):
            done = decoded_count.assign_add(1)  # only once the decode succeeded
        with tf.control_dependencies([done]):
            image = tf.identity(image)
        return image, tf.cast(label, tf.int32)

    ordered = not training or epoch is not None
    if mode != "crop":  # no random draw needed
        return ds.map(lambda *e: load(e, None), num_parallel_calls=parallel, deterministic=ordered)
    if epoch is None:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    else:
        seeds = _epoch_seeds(tf, seed, epoch, (0,))
    return tf.data.Dataset.zip((ds, seeds)).map(load, num_parallel_calls=parallel, deterministic=ordered)


def _augmented(
    tf: Any, ds: Any, spec: _Spec, seed: int, *, cropped: bool, parallel: int, epoch: Any = None
) -> Any:
    """Crop (unless done at decode), resize and flip, with per-element stateless seeds (keyed
    by ``(seed, epoch, position)`` for an epoch tensor: the copies of an echo differ)."""
    if epoch is None:
        seeds = tf.data.Dataset.random(seed=seed + 1, rerandomize_each_iteration=True).batch(4)
    else:
        seeds = _epoch_seeds(tf, seed, epoch, (1, 2))

    def augment(element: Any, pair: Any) -> Any:
        image, label = element
        if not cropped:  # a whole decoded image (echo after decoding): crop and resize at once
            return _crop_resized(tf, image, _crop_window(tf, tf.shape(image), spec.scale, spec.ratio, pair[:2]),
                                 spec, pair[2:]), label
        return _finish(tf, image, spec, pair[2:]), label

    return tf.data.Dataset.zip((ds, seeds)).map(augment, num_parallel_calls=parallel, deterministic=epoch is not None)


def tfds_pipeline(
    source: TfdsSplits,
    split: str,
    *,
    batch_size: int,
    training: bool,
    augment: bool = True,
    echo: float | Echo | None = None,
    echo_at: str = "decode",
    seed: int = 0,
    shuffle_buffer: int = 1024,
    crop_scale: Sequence[float] = (0.08, 1.0),
    crop_ratio: Sequence[float] = (3 / 4, 4 / 3),
) -> ImagePipeline:
    """The pipeline of :func:`image_pipeline` over a split of a prepared TFDS data set.

    TFDS reads and decodes (``builder.as_dataset(split, as_supervised=True)``, files
    shuffled with the seed); then the same echo / augment / batch / prefetch stages follow.
    """
    tfds = _tfds("tenfold.data.tfds_pipeline")
    tf = tensorflow("tenfold.data.tfds_pipeline")
    v.instance("source", source, TfdsSplits, "the TfdsSplits of tfds_splits")
    v.choice("split", split, ("train", "val", "test"))
    spec = _make_spec(source.image_size, source.channels, crop_scale, crop_ratio)
    batch_size = v.integer("batch_size", batch_size, low=1)
    training, augment = v.boolean("training", training), v.boolean("augment", augment)
    v.choice("echo_at", echo_at, ECHO_AT)
    seed = v.integer("seed", seed)
    shuffle_buffer = v.integer("shuffle_buffer", shuffle_buffer, low=1)
    builder = tfds.builder(source.name, data_dir=source.data_dir)
    ds = builder.as_dataset(
        split=source.splits[split], as_supervised=True, shuffle_files=training,
        read_config=tfds.ReadConfig(shuffle_seed=seed),
    )
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    files_read, decoded = FreshExampleCounter(), FreshExampleCounter()
    augmenting = training and augment

    def fix(image: Any, label: Any) -> Any:
        if spec.channels == 1:
            image = image[..., :1] if image.shape[-1] == 1 else tf.image.rgb_to_grayscale(image[..., :3])
        elif image.shape[-1] == 1:
            image = tf.image.grayscale_to_rgb(image)
        else:
            image = image[..., :3]
        if not augmenting:
            image = _finish(tf, image, spec, None)
        return image, tf.cast(label, tf.int32)

    ds = ds.apply(files_read.count).map(fix, num_parallel_calls=tf.data.AUTOTUNE).apply(decoded.count)
    echoing = _as_echo(echo, seed, batch_size) if training else None
    stages = _Stages(spec, seed, echoing, echo_at, augmenting, False, tf.data.AUTOTUNE)
    return ImagePipeline(_after_decode(tf, ds, stages, batch_size, training).prefetch(tf.data.AUTOTUNE),
                         files_read, decoded, echoing)
