"""Data echoing: reuse each example (or batch) several times when the input pipeline is slow.

References:
    Choi et al. 2019, "Faster Neural Network Training with Data Echoing",
    https://arxiv.org/abs/1907.05550 — when upstream stages (reading, decoding,
    augmenting) take R times as long as a training step, repeating each upstream item
    e times cuts the wall time per fresh example by up to min(e, R). Echoing can sit before
    augmentation (each copy augmented differently), after augmentation (example echoing)
    or after batching (batch echoing); a shuffle after the echo keeps copies out of one
    batch.
"""

from __future__ import annotations

import math
import random
from typing import Any

from tenfold import _validate as v
from tenfold._api import export
from tenfold._tf import tensorflow

LEVELS = ("example", "batch")

# the vectorized path (batch, tf.repeat, unbatch) is used for elements up to this size
_VECTOR_BYTES = 16 * 1024
_VECTOR_BLOCK = 64


@export("tenfold.data.FreshExampleCounter")
class FreshExampleCounter:
    """Counts the fresh (upstream) examples an input pipeline has read.

    A ``tf.Variable`` on the host CPU incremented inside the pipeline by
    :meth:`count` (data echoing calls it for you: ``echo(...).counter``). The value counts
    what the pipeline has *read*, prefetched elements included; with echoing it is what the
    trainer logs next to the step count to show how many distinct examples were used.

    Example:
    >>> import tensorflow as tf
    >>> counter = FreshExampleCounter()
    >>> ds = tf.data.Dataset.range(10).apply(counter.count)
    >>> _ = list(ds)
    >>> counter.value
    10
    """

    def __init__(self) -> None:
        self._variable: Any = None

    @property
    def variable(self) -> Any:
        """The underlying int64 ``tf.Variable`` (created on first use)."""
        if self._variable is None:
            tf = tensorflow("tenfold.data.FreshExampleCounter")
            with tf.init_scope(), tf.device("/cpu:0"):
                self._variable = tf.Variable(
                    0, dtype=tf.int64, trainable=False, name="fresh_examples",
                )
        return self._variable

    @property
    def value(self) -> int:
        """Fresh examples read so far."""
        return 0 if self._variable is None else int(self._variable.numpy())

    def reset(self) -> None:
        if self._variable is not None:
            self._variable.assign(0)

    def add(self, amount: Any) -> Any:
        """Add ``amount`` (a scalar tensor) inside a tf.data function; returns the op."""
        tf = tensorflow("tenfold.data.FreshExampleCounter")
        return self.variable.assign_add(tf.cast(amount, tf.int64))

    def count(self, dataset: Any, *, examples_per_element: str = "one") -> Any:
        """A ``dataset.apply`` transformation that counts its elements as they pass.

        Args:
            dataset: a ``tf.data.Dataset``.
            examples_per_element: ``"one"`` (each element is an example) or ``"batch"``
                (each element is a batch: its leading dimension is counted).
        """
        tf = tensorflow("tenfold.data.FreshExampleCounter")
        v.choice("examples_per_element", examples_per_element, ("one", "batch"))
        variable = self.variable

        def counted(*element: Any) -> Any:
            leaf = tf.nest.flatten(element)[0]
            amount = tf.shape(leaf, out_type=tf.int64)[0] if examples_per_element == "batch" else 1
            with tf.control_dependencies([variable.assign_add(tf.cast(amount, tf.int64))]):
                out = tf.nest.map_structure(tf.identity, element)
            return out if len(element) > 1 else out[0]

        return dataset.map(counted)

    def callback(self) -> Any:
        """A Keras callback that writes ``fresh_examples`` into the epoch logs."""
        import keras

        counter = self

        class _LogFresh(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
                if logs is not None:
                    logs["fresh_examples"] = counter.value

        return _LogFresh()


@export("tenfold.data.Echo")
class Echo:
    """The transformation returned by :func:`echo` (see there)."""

    def __init__(
        self,
        factor: float,
        *,
        level: str = "example",
        shuffle_buffer: int | None = None,
        seed: int | None = None,
    ) -> None:
        # how many times each element is repeated
        self.factor = v.number("factor", factor, low=1)
        self.level = v.choice("level", level, LEVELS)
        self.shuffle_buffer = v.integer("shuffle_buffer", shuffle_buffer, low=1, allow_none=True)
        self.seed = v.integer("seed", seed, low=0, allow_none=True)
        # the draws of a fractional factor need a seed; without one, pick one now
        self._draw_seed = seed if seed is not None else random.SystemRandom().randrange(2**31)
        self.counter = FreshExampleCounter()

    @property
    def fresh_examples(self) -> int:
        """Upstream examples read so far (rows of batches for ``level="batch"``)."""
        return self.counter.value

    def get_config(self) -> dict[str, Any]:
        return {
            "factor": self.factor, "level": self.level, "shuffle_buffer": self.shuffle_buffer,
            "seed": self.seed,
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"Echo({args})"

    def _counts(self, tf: Any) -> Any:
        """An infinite dataset of per-element repeat counts."""
        low = math.floor(self.factor)
        frac = self.factor - low
        if frac == 0.0:
            return tf.data.Dataset.from_tensors(tf.constant(low, tf.int64)).repeat()
        draws = tf.data.Dataset.random(seed=self._draw_seed, rerandomize_each_iteration=True)

        def count(draw: Any) -> Any:
            # 24 uniform bits → u in [0, 1); ⌈f⌉ copies with probability f - ⌊f⌋
            u = tf.cast(tf.bitwise.bitwise_and(draw, 0xFFFFFF), tf.float64) / float(2**24)
            return tf.constant(low, tf.int64) + tf.cast(u < frac, tf.int64)

        return draws.map(count)

    def _vectorizable(self, tf: Any, spec: Any) -> bool:
        if self.level != "example":
            return False
        size = 0
        for leaf in tf.nest.flatten(spec):
            if not isinstance(leaf, tf.TensorSpec) or not leaf.shape.is_fully_defined():
                return False
            size += leaf.shape.num_elements() * leaf.dtype.size
        return size <= _VECTOR_BYTES

    def __call__(self, dataset: Any) -> Any:
        tf = tensorflow("tenfold.data.echo")
        v.instance("dataset", dataset, tf.data.Dataset, "a tf.data.Dataset (echo applies to datasets)")
        static = tf.get_static_value(dataset.cardinality())  # None inside a tf.data function
        cardinality = int(static) if static is not None else int(tf.data.UNKNOWN_CARDINALITY)
        integer = self.factor == math.floor(self.factor)
        vectorized = self._vectorizable(tf, dataset.element_spec)
        variable = self.counter.variable
        pairs = tf.data.Dataset.zip((dataset, self._counts(tf)))
        if vectorized:
            blocks = pairs.batch(_VECTOR_BLOCK)

            def repeat_block(element: Any, counts: Any) -> Any:
                add = variable.assign_add(tf.shape(counts, out_type=tf.int64)[0])
                with tf.control_dependencies([add]):
                    return tf.nest.map_structure(lambda t: tf.repeat(t, counts, axis=0), element)

            echoed = blocks.map(repeat_block, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
        else:
            batch_level = self.level == "batch"

            def repeat_one(element: Any, count: Any) -> Any:
                leaf = tf.nest.flatten(element)[0]
                amount = tf.shape(leaf, out_type=tf.int64)[0] if batch_level else tf.constant(1, tf.int64)
                with tf.control_dependencies([variable.assign_add(amount)]):
                    count = tf.identity(count)
                return tf.data.Dataset.from_tensors(element).repeat(count)

            echoed = pairs.flat_map(repeat_one)
        if integer and cardinality >= 0:
            echoed = echoed.apply(tf.data.experimental.assert_cardinality(cardinality * int(self.factor)))
        elif cardinality == tf.data.INFINITE_CARDINALITY:
            echoed = echoed.repeat()  # keeps the (infinite) cardinality visible to Keras
        if self.shuffle_buffer:
            echoed = echoed.shuffle(self.shuffle_buffer, seed=self.seed)
        return echoed


@export("tenfold.data.echo")
def echo(
    factor: float,
    *,
    level: str = "example",
    shuffle_buffer: int | None = None,
    seed: int | None = None,
) -> Echo:
    """A ``dataset.apply`` transformation that repeats each element ``factor`` times.

    Place it after the expensive stages of the input pipeline (Choi et al. 2019): before
    augmentation to echo examples that are augmented afresh, after augmentation to echo
    finished examples (``level="example"``), or after ``batch`` to echo whole batches
    (``level="batch"``). Copies land next to each other; pass ``shuffle_buffer`` to
    shuffle after the echo (without it, batches are full of duplicates).

    * An integer ``factor`` repeats every element exactly ``factor`` times and keeps the
      cardinality known (``n·factor``), so ``fit`` shows real progress without
      ``steps_per_epoch``.
    * A fractional ``factor`` repeats each element ⌊f⌋ or ⌈f⌉ times, drawn independently
      per element (and anew each epoch) from a seeded stream: the mean is ``f`` and two
      runs with one seed agree. The cardinality is then unknown.
    * Small fixed-shape elements take a vectorized path (batch, ``tf.repeat``, unbatch).
    * ``.fresh_examples`` (and ``.counter``) count the upstream examples read.

    Args:
        factor: float ≥ 1. Echo factor ``e``.
        level: ``"example"`` or ``"batch"`` (counts batch rows as fresh examples).
        shuffle_buffer: optional int. Shuffle buffer applied after the echo.
        seed: optional int. Seed of the fractional draws and of the shuffle.

    Example:
    >>> import tensorflow as tf
    >>> ds = tf.data.Dataset.range(3).apply(echo(2))
    >>> [int(v) for v in ds], int(ds.cardinality())
    ([0, 0, 1, 1, 2, 2], 6)
    """
    return Echo(factor, level=level, shuffle_buffer=shuffle_buffer, seed=seed)
