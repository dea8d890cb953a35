"""Long-tail losses against float64 NumPy versions of the papers' formulas."""

import keras
import numpy as np
import pytest

from tenfold.losses import BalancedSoftmaxLoss, ClassBalancedLoss, LDAMLoss, LogitAdjustedLoss
from tenfold.ops import class_balanced_weights, ldam_margins, sampling_weights

COUNTS = [500, 120, 40, 9, 2]


def _data(n=32, c=5, seed=0, scale=3.0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, c, size=n), rng.normal(scale=scale, size=(n, c))


def _np_log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _np_ce(y, z):
    return -_np_log_softmax(z)[np.arange(len(y)), y]


def _np_cb_weights(counts, beta):
    n = np.asarray(counts, np.float64)
    w = (1 - beta) / (1 - beta**n)
    return w / w.sum() * len(n)


def _np_log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def _loss(loss, y, z, **kw):
    return float(loss(np.asarray(y), np.asarray(z, "float32"), **kw))


# ------------------------------------------------------------------ pure math


@pytest.mark.parametrize("beta", [0.0, 0.9, 0.99, 0.9999])
def test_class_balanced_weights_reference(beta):
    got = class_balanced_weights(COUNTS, beta)
    np.testing.assert_allclose(got, _np_cb_weights(COUNTS, beta), rtol=1e-10)
    assert got.sum() == pytest.approx(len(COUNTS))


def test_ldam_margins_reference():
    n = np.asarray(COUNTS, np.float64)
    expected = 0.5 * n**-0.25 / (n**-0.25).max()
    np.testing.assert_allclose(ldam_margins(COUNTS, 0.5), expected, rtol=1e-12)
    assert ldam_margins(COUNTS, 0.5).max() == pytest.approx(0.5)


def test_sampling_weights_reference():
    n = np.asarray(COUNTS, np.float64)
    np.testing.assert_allclose(sampling_weights(COUNTS, 0.5), np.sqrt(n) / np.sqrt(n).sum())
    np.testing.assert_allclose(sampling_weights(COUNTS, 0.0), np.full(5, 0.2))


# ------------------------------------------------------------------ references


@pytest.mark.parametrize("beta", [0.9, 0.999, 0.9999])
def test_class_balanced_softmax_reference(beta):
    y, z = _data()
    expected = np.mean(_np_cb_weights(COUNTS, beta)[y] * _np_ce(y, z))
    assert _loss(ClassBalancedLoss(COUNTS, beta=beta), y, z) == pytest.approx(expected, rel=1e-5)


def test_class_balanced_sigmoid_reference():
    y, z = _data(seed=1)
    onehot = np.eye(5)[y]
    bce = -(onehot * _np_log_sigmoid(z) + (1 - onehot) * _np_log_sigmoid(-z)).sum(-1)
    expected = np.mean(_np_cb_weights(COUNTS, 0.999)[y] * bce)
    got = _loss(ClassBalancedLoss(COUNTS, beta=0.999, base="sigmoid"), y, z)
    assert got == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_class_balanced_focal_reference(gamma):
    y, z = _data(seed=2)
    onehot = np.eye(5)[y]
    p = 1 / (1 + np.exp(-z))
    p_t = np.where(onehot > 0, p, 1 - p)
    focal = -((1 - p_t) ** gamma) * np.log(p_t)
    expected = np.mean(_np_cb_weights(COUNTS, 0.9999)[y] * focal.sum(-1))
    got = _loss(ClassBalancedLoss(COUNTS, base="focal", gamma=gamma), y, z)
    assert got == pytest.approx(expected, rel=1e-5)


def test_focal_is_finite_for_huge_logits():
    y = np.array([0, 1, 2, 3])
    z = np.array([[200.0, -200, 0, 0, 0], [-300, 300, 0, 0, 0], [0, 0, -500, 500, 0], [0, 0, 0, 80, 0]])
    value = _loss(ClassBalancedLoss(COUNTS, base="focal"), y, z)
    assert np.isfinite(value) and value > 0
    # confidently right examples contribute (almost) nothing
    assert _loss(ClassBalancedLoss(COUNTS, base="focal"), [0], [[200.0, -200, -200, -200, -200]]) < 1e-30


@pytest.mark.parametrize("max_margin,scale", [(0.5, 30.0), (0.3, 10.0), (1.0, 1.0)])
def test_ldam_reference(max_margin, scale):
    y, z = _data(seed=3)
    z = np.tanh(z)  # cosine-classifier-like logits
    n = np.asarray(COUNTS, np.float64)
    delta = max_margin * n**-0.25 / (n**-0.25).max()
    adjusted = z - np.eye(5)[y] * delta[y][:, None]
    expected = np.mean(_np_ce(y, scale * adjusted))
    got = _loss(LDAMLoss(COUNTS, max_margin=max_margin, scale=scale), y, z)
    assert got == pytest.approx(expected, rel=1e-5)


def test_balanced_softmax_reference():
    y, z = _data(seed=4)
    expected = np.mean(_np_ce(y, z + np.log(np.asarray(COUNTS, np.float64))))
    assert _loss(BalancedSoftmaxLoss(COUNTS), y, z) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0, 2.0])
def test_logit_adjusted_reference(tau):
    y, z = _data(seed=5)
    prior = np.asarray(COUNTS, np.float64) / sum(COUNTS)
    expected = np.mean(_np_ce(y, z + tau * np.log(prior)))
    assert _loss(LogitAdjustedLoss(COUNTS, tau=tau), y, z) == pytest.approx(expected, rel=1e-5)


# ------------------------------------------------------------------ equivalences


def test_balanced_softmax_equals_logit_adjusted_tau_one():
    y, z = _data(seed=6)
    per_a = BalancedSoftmaxLoss(COUNTS, reduction=None)(y, z.astype("float32"))
    per_b = LogitAdjustedLoss(COUNTS, tau=1.0, reduction=None)(y, z.astype("float32"))
    np.testing.assert_allclose(np.asarray(per_a), np.asarray(per_b), rtol=1e-5, atol=1e-6)


def test_logit_adjusted_tau_zero_is_cross_entropy():
    y, z = _data(seed=7)
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    assert _loss(LogitAdjustedLoss(COUNTS, tau=0.0), y, z) == pytest.approx(_loss(ce, y, z), rel=1e-5)


@pytest.mark.parametrize(
    "make",
    [
        lambda c: ClassBalancedLoss(c),
        lambda c: ClassBalancedLoss(c, beta=0.5),
        lambda c: BalancedSoftmaxLoss(c),
        lambda c: LogitAdjustedLoss(c, tau=1.7),
        lambda c: LDAMLoss(c, max_margin=0.0, scale=1.0),
    ],
    ids=["cb", "cb-beta0.5", "balanced-softmax", "logit-adjusted", "ldam-no-margin"],
)
def test_balanced_counts_reduce_to_cross_entropy(make):
    y, z = _data(seed=8)
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    assert _loss(make([50] * 5), y, z) == pytest.approx(_loss(ce, y, z), rel=1e-5)


def test_ldam_on_balanced_counts_is_one_additive_margin():
    y, z = _data(seed=9)
    z = np.tanh(z)
    expected = np.mean(_np_ce(y, 30.0 * (z - 0.5 * np.eye(5)[y])))
    assert _loss(LDAMLoss([50] * 5), y, z) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("base", ["softmax", "sigmoid", "focal"])
def test_probabilities_input_matches_logits(base):
    y, z = _data(seed=10, scale=1.0)
    if base == "softmax":
        probs = np.exp(_np_log_softmax(z))
    else:
        probs = 1 / (1 + np.exp(-z))
    a = _loss(ClassBalancedLoss(COUNTS, base=base), y, z)
    b = _loss(ClassBalancedLoss(COUNTS, base=base, from_logits=False), y, probs)
    assert a == pytest.approx(b, rel=1e-4)


def test_probabilities_input_balanced_softmax():
    y, z = _data(seed=11, scale=1.0)
    probs = np.exp(_np_log_softmax(z))
    a = _loss(BalancedSoftmaxLoss(COUNTS), y, z)
    b = _loss(BalancedSoftmaxLoss(COUNTS, from_logits=False), y, probs)
    assert a == pytest.approx(b, rel=1e-4)


def test_labels_with_trailing_axis_and_sample_weight():
    y, z = _data(seed=12)
    w = np.linspace(0.0, 2.0, len(y))
    loss = LogitAdjustedLoss(COUNTS)
    a = float(loss(y[:, None], z.astype("float32"), sample_weight=w))
    per = np.asarray(LogitAdjustedLoss(COUNTS, reduction=None)(y, z.astype("float32")))
    assert a == pytest.approx(np.sum(per * w) / len(y), rel=1e-5)


def test_set_class_weights_multiplies_per_example_loss():
    y, z = _data(seed=13)
    loss = LDAMLoss(COUNTS, scale=5.0, reduction=None)
    plain = np.asarray(loss(y, z.astype("float32")))
    w = np.array([0.1, 0.5, 1.0, 2.0, 4.0])
    loss.set_class_weights(w)
    np.testing.assert_allclose(np.asarray(loss(y, z.astype("float32"))), plain * w[y], rtol=1e-6)
    np.testing.assert_allclose(loss.class_weights, w.astype("float32"))
    loss.set_class_weights(None)
    np.testing.assert_allclose(np.asarray(loss(y, z.astype("float32"))), plain, rtol=1e-6)


def test_gradient_direction_favours_tail_class():
    # at equal logits, balanced softmax pushes the tail class's logit up harder than CE does
    import tensorflow as tf

    z = tf.Variable(np.zeros((1, 5), "float32"))
    with tf.GradientTape() as tape:
        value = BalancedSoftmaxLoss(COUNTS)(np.array([4]), z)
    grad = tape.gradient(value, z).numpy()[0]
    assert grad[4] < -0.9  # d/dz_y = p_y - 1 with p_y tiny for the rarest class


def test_config_round_trip_keeps_every_argument():
    loss = ClassBalancedLoss(COUNTS, beta=0.99, base="focal", gamma=1.0, from_logits=False, name="cb")
    config = loss.get_config()
    assert config["class_counts"] == COUNTS and config["beta"] == 0.99 and config["base"] == "focal"
    assert config["gamma"] == 1.0 and config["from_logits"] is False and config["name"] == "cb"
    again = ClassBalancedLoss.from_config(config)
    assert again.get_config() == config
    assert LDAMLoss.from_config(LDAMLoss(COUNTS, max_margin=0.3, scale=8.0).get_config()).scale == 8.0
    assert LogitAdjustedLoss.from_config(LogitAdjustedLoss(COUNTS, tau=0.7).get_config()).tau == 0.7


# ------------------------------------------------------------------ weighted mean


def test_weighted_mean_matches_ldam_drw_convention():
    # issue 15's batch: counts [100, 10], DRW weights of beta 0.9999, zero logits, scale 1
    counts, y, z = [100, 10], np.array([0, 0, 0, 1]), np.zeros((4, 2))
    w = _np_cb_weights(counts, 0.9999)
    n = np.asarray(counts, np.float64)
    delta = 0.5 * n**-0.25 / (n**-0.25).max()
    per = _np_ce(y, z - np.eye(2)[y] * delta[y][:, None])
    by_n, by_w = np.sum(w[y] * per) / len(y), np.sum(w[y] * per) / np.sum(w[y])
    assert (round(by_n, 4), round(by_w, 4)) == (0.5581, 0.9439)
    for reduction, expected in (("sum_over_batch_size", by_n), ("weighted_mean", by_w)):
        loss = LDAMLoss(counts, scale=1.0, reduction=reduction)
        loss.set_class_weights(w)
        assert _loss(loss, y, z) == pytest.approx(expected, rel=1e-6)


def test_weighted_mean_with_sample_weights_and_class_balanced_weights():
    y, z = _data(seed=5)
    s = np.random.default_rng(6).uniform(0.1, 2.0, len(y))
    drw = np.array([0.5, 1.0, 1.5, 2.0, 3.0])
    cb = _np_cb_weights(COUNTS, 0.999)
    weight = s * cb[y] * drw[y]
    expected = np.sum(weight * _np_ce(y, z)) / np.sum(weight)
    loss = ClassBalancedLoss(COUNTS, beta=0.999, reduction="weighted_mean")
    loss.set_class_weights(drw)
    assert _loss(loss, y, z, sample_weight=s.astype("float32")) == pytest.approx(expected, rel=1e-5)
    # the default still divides by the batch size
    plain = ClassBalancedLoss(COUNTS, beta=0.999)
    plain.set_class_weights(drw)
    n_mean = np.mean(s * cb[y] * drw[y] * _np_ce(y, z))
    assert _loss(plain, y, z, sample_weight=s.astype("float32")) == pytest.approx(n_mean, rel=1e-5)


def test_weighted_mean_config_and_fit():
    loss = LDAMLoss([40, 20, 5, 2], scale=5.0, reduction="weighted_mean")
    config = loss.get_config()
    assert config["reduction"] == "weighted_mean"
    assert LDAMLoss.from_config(config).get_config() == config
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])
    model.compile("sgd", loss)
    x = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
    history = model.fit(x, np.arange(16) % 4, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    with pytest.raises(ValueError, match=r"reduction must be one of .*'weighted_mean', received 'wmean'"):
        LDAMLoss([4, 2], reduction="wmean")


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "counts,error,match",
    [
        ([10, 0, 3], ValueError, r"class_counts\[1\] must be an integer >= 1, received 0\."),
        ([10, -2], ValueError, r"class_counts\[1\] must be an integer >= 1, received -2\."),
        ([10, 2.5], ValueError, r"class_counts\[1\] must be an integer, received 2.5\."),
        ([10, "3"], TypeError, r"class_counts\[1\] must be an integer, received '3' of type str"),
        ([10, True], TypeError, r"class_counts\[1\] must be an integer, received the bool True"),
        ([7], ValueError, r"class_counts must list the training examples of at least 2 classes"),
        ("10,3", TypeError, r"class_counts must be a list of integers, received '10,3'"),
        (None, TypeError, r"class_counts must be a list of integers, received None"),
    ],
)
@pytest.mark.parametrize("cls", [ClassBalancedLoss, LDAMLoss, BalancedSoftmaxLoss, LogitAdjustedLoss])
def test_bad_class_counts(cls, counts, error, match):
    with pytest.raises(error, match=match):
        cls(counts)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"beta must be a number >= 0 and < 1, received 1.0"):
        ClassBalancedLoss(COUNTS, beta=1.0)
    with pytest.raises(ValueError, match=r"base must be one of 'softmax', 'sigmoid', 'focal', received 'hinge'"):
        ClassBalancedLoss(COUNTS, base="hinge")
    with pytest.raises(ValueError, match=r"gamma must be a number >= 0, received -1"):
        ClassBalancedLoss(COUNTS, gamma=-1)
    with pytest.raises(ValueError, match=r"scale must be a number > 0, received 0"):
        LDAMLoss(COUNTS, scale=0)
    with pytest.raises(ValueError, match=r"max_margin must be a number >= 0, received -0.1"):
        LDAMLoss(COUNTS, max_margin=-0.1)
    with pytest.raises(TypeError, match=r"tau must be a finite number, received 'big' of type str"):
        LogitAdjustedLoss(COUNTS, tau="big")
    with pytest.raises(TypeError, match=r"from_logits must be True or False, received 'yes'"):
        BalancedSoftmaxLoss(COUNTS, from_logits="yes")
    with pytest.raises(ValueError, match=r"weights must be 5 finite non-negative numbers"):
        BalancedSoftmaxLoss(COUNTS).set_class_weights([1.0, 2.0])
