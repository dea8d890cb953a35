"""tenfold.data.echo: repeat counts and order, cardinality, fractional factors (mean and
determinism), batch level, shuffling, the fresh-example counter, distribution, bad input."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tenfold.data import FreshExampleCounter, echo

SMALL = tf.data.Dataset.range(7)  # small elements: vectorized path
BIG = tf.data.Dataset.range(7).map(lambda i: tf.fill([64, 64], i))  # 16 KiB+: flat_map path


def _ids(ds):
    out = []
    for element in ds:
        value = np.asarray(element)
        out.append(int(value.flat[0]))
    return out


@pytest.mark.parametrize("source", [SMALL, BIG], ids=["vectorized", "flat_map"])
@pytest.mark.parametrize("factor", [1, 2, 3])
def test_integer_factor_repeats_in_order_and_keeps_cardinality(source, factor):
    ds = source.apply(echo(factor))
    assert _ids(ds) == [i for i in range(7) for _ in range(factor)]
    assert int(ds.cardinality()) == 7 * factor
    assert int(ds.cardinality()) == len(_ids(ds))


def test_factor_one_equals_the_input():
    x = np.random.default_rng(0).normal(size=(5, 3)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, np.arange(5)))
    for (a, la), (b, lb) in zip(ds, ds.apply(echo(1))):
        np.testing.assert_array_equal(a, b)
        assert int(la) == int(lb)
    assert len(list(ds.apply(echo(1)))) == 5


def test_structures_pass_through():
    ds = tf.data.Dataset.from_tensor_slices({"x": np.arange(4.0), "y": np.arange(4)})
    out = list(ds.apply(echo(2)))
    assert [int(e["y"]) for e in out] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert out[0]["x"].dtype == tf.float64


def test_infinite_input_stays_infinite():
    ds = tf.data.Dataset.range(3).repeat().apply(echo(2))
    assert int(ds.cardinality()) == tf.data.INFINITE_CARDINALITY
    assert _ids(ds.take(6)) == [0, 0, 1, 1, 2, 2]


def test_fractional_factor_mean_and_bounds_against_binomial_reference():
    n, factor = 20000, 2.3
    ds = tf.data.Dataset.range(n).apply(echo(factor, seed=3))
    counts = np.bincount(_ids(ds), minlength=n)
    assert set(np.unique(counts)) <= {2, 3}
    # reference: each element independently 3 times with p = 0.3 → mean 2.3, sd of the
    # mean sqrt(p(1-p)/n) (float64 NumPy)
    p = factor - math.floor(factor)
    sd = math.sqrt(p * (1 - p) / n)
    assert abs(counts.mean() - factor) < 5 * sd
    # independence: the extra copy of neighbours is uncorrelated
    extra = (counts == 3).astype("float64")
    assert abs(np.corrcoef(extra[:-1], extra[1:])[0, 1]) < 5 / math.sqrt(n)


def test_fractional_factor_is_deterministic_with_a_seed_and_redrawn_each_epoch():
    runs = [list(tf.data.Dataset.range(200).apply(echo(1.5, seed=11))) for _ in range(2)]
    assert [int(v) for v in runs[0]] == [int(v) for v in runs[1]]
    ds = tf.data.Dataset.range(200).apply(echo(1.5, seed=11))
    first, second = _ids(ds), _ids(ds)
    assert first != second  # a new draw per epoch
    assert _ids(tf.data.Dataset.range(200).apply(echo(1.5, seed=12))) != first
    # the vectorized and the flat_map paths draw the same counts
    big = tf.data.Dataset.range(200).map(lambda i: tf.fill([64, 64], i))
    assert _ids(big.apply(echo(1.5, seed=11))) == first


def test_batch_level_repeats_batches_and_counts_rows():
    e = echo(3, level="batch")
    ds = tf.data.Dataset.range(10).batch(4).apply(e)
    batches = [list(np.asarray(b)) for b in ds]
    assert batches == [[0, 1, 2, 3]] * 3 + [[4, 5, 6, 7]] * 3 + [[8, 9]] * 3
    assert int(ds.cardinality()) == 9
    assert e.fresh_examples == 10


def test_copies_are_adjacent_unless_shuffled():
    n, batch = 512, 32
    plain = _ids(tf.data.Dataset.range(n).apply(echo(4)))
    shuffled = _ids(tf.data.Dataset.range(n).apply(echo(4, shuffle_buffer=1024, seed=0)))
    assert sorted(shuffled) == sorted(plain)

    def duplicate_share(ids):
        shares = [1 - len(set(ids[i:i + batch])) / batch for i in range(0, len(ids), batch)]
        return float(np.mean(shares))

    assert duplicate_share(plain) == pytest.approx(0.75)
    assert duplicate_share(shuffled) < 0.2
    again = _ids(tf.data.Dataset.range(n).apply(echo(4, shuffle_buffer=1024, seed=0)))
    assert again == shuffled
    assert int(tf.data.Dataset.range(n).apply(echo(4, shuffle_buffer=64)).cardinality()) == 4 * n


def test_fresh_example_counter_counts_upstream_reads():
    e = echo(2)
    ds = tf.data.Dataset.range(100).apply(e)
    assert len(list(ds)) == 200
    assert e.fresh_examples == 100
    counter = FreshExampleCounter()
    _ = list(tf.data.Dataset.range(12).batch(5).apply(lambda d: counter.count(d, examples_per_element="batch")))
    assert counter.value == 12
    counter.reset()
    assert counter.value == 0


def test_fit_sees_the_cardinality_and_logs_fresh_examples():
    x = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    e = echo(2)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).apply(e).batch(8)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(ds, epochs=2, verbose=0, callbacks=[e.counter.callback()])
    assert history.history["fresh_examples"] == [32, 64]
    assert int(ds.cardinality()) == 8


def test_works_with_distribute_datasets_from_function():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    made = {}

    def dataset_fn(context):
        e = echo(2, seed=0)
        made["echo"] = e
        ds = tf.data.Dataset.range(16).apply(e)
        return ds.batch(context.get_per_replica_batch_size(8))

    with strategy.scope():
        dist = strategy.distribute_datasets_from_function(dataset_fn)
        values = [int(v) for batch in dist for v in np.asarray(strategy.experimental_local_results(batch)[0])]
    assert sorted(values) == sorted(list(range(16)) * 2)
    assert made["echo"].fresh_examples >= 16


@pytest.mark.parametrize(
    "factor,error,match",
    [
        (0.5, ValueError, r"factor must be a number >= 1, received 0.5"),
        (0, ValueError, r"factor must be a number >= 1, received 0"),
        (-2, ValueError, r"factor must be a number >= 1, received -2"),
        (float("nan"), ValueError, r"factor must be a finite number, received nan"),
        (float("inf"), ValueError, r"factor must be a finite number, received inf"),
        ("2", TypeError, r"factor must be a finite number, received '2' of type str"),
        (None, TypeError, r"factor must be a finite number, received None"),
        (True, TypeError, r"factor must be a finite number, received the bool True"),
    ],
)
def test_bad_factor(factor, error, match):
    with pytest.raises(error, match=match):
        echo(factor)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"level": "epoch"}, r"level must be one of 'example', 'batch', received 'epoch'"),
        ({"shuffle_buffer": 0}, "shuffle_buffer must be an integer >= 1, received 0"),
        ({"seed": 1.5}, "seed must be an integer or None, received 1.5"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        echo(2, **kwargs)


def test_rejects_a_non_dataset():
    with pytest.raises(TypeError, match=r"dataset must be a tf.data.Dataset \(echo applies to datasets\), received \[1, 2, 3\] of type list"):
        echo(2)([1, 2, 3])
