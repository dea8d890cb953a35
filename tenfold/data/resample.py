"""Class-aware re-sampling of a ``tf.data`` pipeline.

References:
    Kang et al. 2020, "Decoupling Representation and Classifier for Long-Tailed
    Recognition", ICLR, https://arxiv.org/abs/1910.09217 (instance-, class-balanced,
    square-root and progressively-balanced sampling, eq. 1-2);
    Mahajan et al. 2018, "Exploring the Limits of Weakly Supervised Pretraining"
    (square-root sampling).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tenfold import _validate as v
from tenfold._api import export
from tenfold._tf import tensorflow
from tenfold.ops.long_tail import (
    SAMPLING_EXPONENTS,
    progressive_weights,
    sampling_weights,
    validate_class_counts,
)

STRATEGIES = ("class_balanced", "square_root", "progressive", "instance")


def target_distribution(
    class_counts: Sequence[int], strategy: str = "class_balanced", *, epoch: int = 0, epochs: int = 1
) -> np.ndarray:
    """The class probabilities that :func:`resample` draws from (for ``epoch`` when
    ``strategy="progressive"``).

    Example:
    >>> target_distribution([9, 1], "square_root").round(2).tolist()
    [0.75, 0.25]
    """
    v.choice("strategy", strategy, STRATEGIES)
    if strategy == "progressive":
        return progressive_weights(class_counts, epoch, epochs)
    return sampling_weights(class_counts, SAMPLING_EXPONENTS[strategy])


def _check_found(counts: list[int], found: np.ndarray) -> None:
    if len(found) > len(counts):
        raise ValueError(
            f"the dataset has labels up to {len(found) - 1} but class_counts lists only "
            f"{len(counts)} classes."
        )
    empty = [c for c in range(len(counts)) if c >= len(found) or found[c] == 0]
    if empty:
        raise ValueError(
            f"classes {empty} have no example in the dataset but class_counts gives them "
            f"{[counts[c] for c in empty]}; re-sampling cannot draw from an empty class."
        )


def _check_labels(tf: Any, dataset: Any, counts: list[int], label_index: int) -> None:
    """One pass over the labels only: every class must have an example."""
    found = np.zeros(0, "int64")
    for labels in dataset.map(lambda *e: _label_of(e, label_index)).batch(65536):
        found = _add_counts(found, np.asarray(labels).reshape(-1))
    _check_found(counts, found)


def _add_counts(found: np.ndarray, labels: np.ndarray) -> np.ndarray:
    if labels.size and labels.min() < 0:
        raise ValueError(f"labels must be >= 0, found {int(labels.min())}.")
    more = np.bincount(labels.astype("int64"), minlength=len(found))
    out = np.zeros(max(len(found), len(more)), "int64")
    out[: len(found)] += found
    out[: len(more)] += more
    return out


def _materialized_classes(tf: Any, dataset: Any, counts: list[int], label_index: int) -> list[Any]:
    """Read ``dataset`` once into memory and split it into one dataset per class."""
    chunks = list(dataset.batch(4096).as_numpy_iterator())
    if not chunks:
        raise ValueError("the dataset is empty.")
    arrays = tuple(np.concatenate([chunk[i] for chunk in chunks]) for i in range(len(chunks[0])))
    labels = arrays[label_index].reshape(-1).astype("int64")
    _check_found(counts, _add_counts(np.zeros(0, "int64"), labels))
    spec = dataset.element_spec
    out = []
    for c in range(len(counts)):
        idx = np.flatnonzero(labels == c)
        out.append(tf.data.Dataset.from_tensor_slices(
            tuple(tf.constant(a[idx], dtype=s.dtype) for a, s in zip(arrays, spec))
        ))
    return out


def _label_of(element: Any, label_index: int) -> Any:
    if isinstance(element, dict):
        raise TypeError("resample needs (x, y) or (x, y, sample_weight) tuples, received a dict element.")
    return element[label_index]


@export("tenfold.data.resample")
def resample(
    dataset: Any,
    class_counts: Sequence[int],
    *,
    strategy: str = "class_balanced",
    epochs: int | None = None,
    num_samples: int | None = None,
    seed: int | None = None,
    shuffle_buffer: int | None = None,
    cache: bool = True,
    label_index: int = 1,
) -> Any:
    """Re-sample an unbatched ``(x, y[, w])`` dataset so classes appear with target rates.

    The dataset is split into one ``filter``-ed dataset per class (cached, shuffled and
    repeated), and ``tf.data.Dataset.sample_from_datasets`` draws from them with the
    target class probabilities ``p_j``:

    * ``"class_balanced"``: ``p_j = 1/C`` (``q = 0``);
    * ``"square_root"``: ``p_j ∝ √n_j`` (``q = 1/2``);
    * ``"instance"``: ``p_j ∝ n_j`` (the natural distribution, for comparison);
    * ``"progressive"``: ``p_j(t) = (1 − t/(T−1)) n_j/N + t/(T−1) · 1/C`` for epoch
      ``t = 0 … T−1``, from instance- to class-balanced over ``epochs = T`` epochs.

    One epoch is ``num_samples`` elements (default: ``Σ n_j``, the original size). The
    result has a known cardinality: ``num_samples`` for the fixed strategies, re-drawn
    with fresh randomness on every pass (so ``fit(..., epochs=k)`` sees new samples each
    epoch), and ``epochs × num_samples`` for ``"progressive"``, whose epochs follow each
    other in one pass: fit it with ``epochs=T`` and
    ``steps_per_epoch=num_samples // batch_size`` (Keras then keeps one iterator).

    Apply it before augmentation, echoing and batching. With ``cache=True`` (default) the
    dataset is read once, at this call, into memory and split by class (its elements must
    then have fixed shapes); with ``cache=False`` each class is a ``filter`` over the
    streamed input (no memory, but rare classes cost a scan of the input per pass) and
    only the labels are read once, to check that no listed class is empty.

    Args:
        dataset: unbatched `tf.data.Dataset` of `(x, y)` or `(x, y, sample_weight)` with
            scalar integer labels `y`.
        class_counts: list of int. Training examples per class in `dataset`.
        strategy: str. `"class_balanced"` (default), `"square_root"`, `"progressive"` or
            `"instance"`.
        epochs: int. Number of epochs `T` of `"progressive"` (required there).
        num_samples: int. Elements per epoch. Defaults to `sum(class_counts)`.
        seed: optional int. Makes the sampling and shuffling deterministic.
        shuffle_buffer: int. Per-class shuffle buffer. Defaults to the class's count.
        cache: bool. Hold the examples in memory, split by class (default), or stream
            them through per-class filters.
        label_index: int. Position of the label in each element. Defaults to `1`.

    Returns:
        A `tf.data.Dataset` with the element structure of `dataset`.

    Example:
    >>> import tensorflow as tf
    >>> ds = tf.data.Dataset.from_tensor_slices((np.arange(10.0), np.array([0] * 9 + [1])))
    >>> ys = [int(y) for _, y in resample(ds, [9, 1], seed=0, num_samples=1000)]
    >>> bool(0.4 < np.mean(ys) < 0.6)
    True
    """
    tf = tensorflow("tenfold.data.resample")
    counts = validate_class_counts(class_counts)
    v.choice("strategy", strategy, STRATEGIES)
    v.instance("dataset", dataset, tf.data.Dataset, "an unbatched tf.data.Dataset of (x, y) pairs")
    if strategy == "progressive":
        if epochs is None:
            raise ValueError("epochs (an integer >= 1) is required by strategy='progressive', received None.")
        epochs = v.integer("epochs", epochs, low=1)
    elif epochs is not None:
        raise ValueError(f"epochs is only used by strategy='progressive', received epochs={epochs!r} "
                         f"with strategy={strategy!r}.")
    num_samples = v.integer("num_samples", sum(counts) if num_samples is None else num_samples, low=1)
    shuffle_buffer = v.integer("shuffle_buffer", shuffle_buffer, low=1, allow_none=True)
    seed = v.integer("seed", seed, low=0, allow_none=True)
    cache = v.boolean("cache", cache)
    label_index = v.integer("label_index", label_index, low=0)
    spec = dataset.element_spec
    if not isinstance(spec, tuple):
        raise TypeError(
            f"resample needs (x, y) or (x, y, sample_weight) tuples; the dataset's element "
            f"spec is {spec!r}."
        )
    if len(spec) <= label_index:
        raise ValueError(
            f"label_index must be < {len(spec)}, the length of the dataset's elements, "
            f"received {label_index}."
        )
    label_spec = spec[label_index]
    if label_spec.shape.rank not in (0, None) or not (label_spec.dtype.is_integer):
        raise ValueError(
            "resample needs an unbatched dataset with scalar integer labels; the label spec "
            f"(element {label_index}, label_index) is {label_spec!r}. Call resample before .batch()."
        )

    if cache:
        per_class = _materialized_classes(tf, dataset, counts, label_index)
    else:
        _check_labels(tf, dataset, counts, label_index)
        per_class = [
            dataset.filter(
                lambda *element, c=c: tf.equal(tf.cast(_label_of(element, label_index), tf.int64), c)
            )
            for c in range(len(counts))
        ]
    per_class = [
        ds_c.shuffle(
            shuffle_buffer or max(1, counts[c]),
            seed=None if seed is None else int(seed) * 1000 + c,
            reshuffle_each_iteration=True,
        ).repeat()
        for c, ds_c in enumerate(per_class)
    ]

    if strategy != "progressive":
        weights = target_distribution(counts, strategy).astype("float32")
        sampled = tf.data.Dataset.sample_from_datasets(
            per_class, weights=weights.tolist(), seed=seed, rerandomize_each_iteration=True
        )
        return sampled.take(num_samples)

    table = np.stack([progressive_weights(counts, t, epochs) for t in range(epochs)]).astype("float32")
    table_t = tf.constant(table)
    steps = tf.data.Dataset.range(epochs * num_samples)
    weight_ds = steps.map(lambda i: tf.gather(table_t, i // num_samples))
    sampled = tf.data.Dataset.sample_from_datasets(
        per_class, weights=weight_ds, seed=seed, rerandomize_each_iteration=True
    )
    return sampled.take(epochs * num_samples)
