import numpy as np
import pytest

from tenfold.data import long_tail_counts, long_tailed


def reference_counts(n_max, num_classes, imbalance):
    # CIFAR-10-LT: n_c = n_max * (1/IF)^(c/(C-1)), float64, floored
    c = np.arange(num_classes, dtype=np.float64)
    return np.floor(n_max * (1.0 / imbalance) ** (c / (num_classes - 1)) + 1e-9).astype(int)


@pytest.mark.parametrize("n_max,classes,imbalance", [(5000, 10, 100), (500, 100, 50), (105, 10, 100), (200, 7, 10)])
def test_counts_match_float64_reference(n_max, classes, imbalance):
    got = long_tail_counts(n_max, classes, imbalance)
    np.testing.assert_array_equal(got, np.maximum(1, reference_counts(n_max, classes, imbalance)))
    assert got[0] == n_max
    assert all(a >= b for a, b in zip(got, got[1:]))


def test_cifar10_lt_known_profile():
    # the published CIFAR-10-LT (IF 100) training counts
    assert long_tail_counts(5000, 10, 100) == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]


def test_subsample_is_seeded_subset_with_reported_counts():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 50)
    x = rng.normal(size=(200, 3))
    xa, ya, counts = long_tailed(x, y, 10, seed=1)
    xb, yb, _ = long_tailed(x, y, 10, seed=1)
    np.testing.assert_array_equal(xa, xb)
    assert counts == list(np.bincount(ya))
    assert counts[0] == 50 and counts[-1] == 5
    rows = {r.tobytes() for r in x}
    assert all(r.tobytes() in rows for r in xa)
    xc, _, _ = long_tailed(x, y, 10, seed=2)
    assert not np.array_equal(xa, xc)


def test_bad_arguments():
    y = np.repeat(np.arange(3), 10)
    with pytest.raises(ValueError, match="imbalance_factor must be a number >= 1"):
        long_tailed(np.zeros(30), y, 0.5)
    with pytest.raises(ValueError, match="lower n_max"):
        long_tailed(np.zeros(30), y, 2, n_max=20)


def test_bad_arguments_are_named():
    x, y = np.zeros((30, 2)), np.repeat([0, 1, 2], 10)
    with pytest.raises(ValueError, match=r"imbalance_factor must be a number >= 1, received 0.5"):
        long_tailed(x, y, 0.5)
    with pytest.raises(ValueError, match=r"imbalance_factor must be a finite number, received inf"):
        long_tailed(x, y, float("inf"))
    with pytest.raises(ValueError, match=r"n_max must be an integer >= 1, received 0"):
        long_tailed(x, y, 10, n_max=0)
    with pytest.raises(TypeError, match=r"seed must be an integer, received 'a' of type str"):
        long_tailed(x, y, 10, seed="a")
    with pytest.raises(ValueError, match=r"y must hold integer labels >= 0"):
        long_tailed(x, y.astype("float32"), 10)
    with pytest.raises(ValueError, match=r"num_classes must be an integer >= 1, received 0"):
        long_tail_counts(10, 0, 10)
