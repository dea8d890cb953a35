"""tenfold.remat.apply on any functional model: cut points, segment sizes, policies, budget,
and gradients / state equal to the plain model (TensorFlow; JAX and PyTorch in
test_backends.py)."""

import graphs
import keras
import numpy as np
import pytest
from gradcheck import compare

import tenfold
from tenfold.remat import Recompute, apply, plan, segments_for
from tenfold.remat.apply import balanced_cuts


def _segments(model):
    return [layer for layer in model.layers if isinstance(layer, Recompute)]


def _same_outputs(a, b, x):
    for p, q in zip(keras.tree.flatten(a(x)), keras.tree.flatten(b(x))):
        np.testing.assert_allclose(np.asarray(q), np.asarray(p), rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- graphs of every shape


def test_minimal_x_plus_y_model():
    # the minimal case: an operation node (no .weights) next to a layer
    i = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(3, 1)(i)
    h = keras.layers.Conv2D(3, 1)(h + i)
    model = keras.Model(i, keras.layers.Conv2D(2, 1)(h + i))
    wrapped = apply(model, 1)
    assert len(_segments(wrapped)) == 1
    x = graphs.dag_input()
    _same_outputs(model, wrapped, x)
    compare(model, wrapped, x)


def test_dag_with_residuals_squeeze_excite_bn_and_dropout():
    model = graphs.dag()
    p = plan(model, "sqrt")
    # every residual add is a cut point; inside a block nothing is (the shortcut is live
    # there, and inside the squeeze-excite branch the features too)
    assert {"b0_add", "b1_add", "pool"} <= set(p.cut_points)
    assert not {"b0_conv1", "b0_bn", "b0_se", "multiply", "b0_drop"} & set(p.cut_points)
    wrapped = apply(model, "sqrt")
    assert len(_segments(wrapped)) == len(p.segments) >= 2
    assert p.plain[-1] == "logits"
    moved = compare(model, wrapped, graphs.dag_input())
    # the moving statistics and the Dropout seed states moved, once (compare checks equal)
    assert any("moving_mean" in path for path in moved)
    assert any("seed_generator" in path for path in moved)


def test_nested_models_are_inlined_shared_block_twice():
    model = graphs.nested()
    p = plan(model, 2)
    flat = [name for seg in p.segments for name in seg] + p.plain
    # both calls of the shared block appear, by their path through the nested model
    assert sum(name.startswith("block/") for name in flat) == 2 * 3
    assert any(name.startswith("tail/") for name in flat)
    wrapped = apply(model, 2)
    x = np.random.default_rng(1).normal(size=(5, 6)).astype("float32")
    _same_outputs(model, wrapped, x)
    moved = compare(model, wrapped, x)
    assert any("moving_variance" in path for path in moved)


def test_two_inputs_two_outputs_with_a_side_input():
    model = graphs.two_in_two_out()
    wrapped = apply(model, 2)
    assert sorted(wrapped.output.keys()) == ["aux", "main"]
    segments = _segments(wrapped)
    assert len(segments) == 2
    # the "scale" input feeds every block: a segment with a block takes it as a second input
    assert max(len(s.layer.inputs) for s in segments) == 2
    # "aux" leaves the graph from inside a segment: that segment has two outputs
    assert max(len(s.layer.outputs) for s in segments) == 2
    x = graphs.two_inputs()
    _same_outputs(model, wrapped, x)
    compare(model, wrapped, x)


def test_transformer_encoder_with_padding_mask_and_attention_dropout():
    model = graphs.encoder()
    p = plan(model, "sqrt")
    # the attention mask is computed from an input by weight-free ops: a side tensor, so
    # the residual adds and layer norms are cut points despite it
    assert {"b0_ln1", "b0_ln2", "b1_ln2"} <= set(p.cut_points)
    wrapped = apply(model, "sqrt")
    assert len(_segments(wrapped)) >= 2
    x = graphs.encoder_inputs()
    _same_outputs(model, wrapped, x)
    moved = compare(model, wrapped, x)
    assert any("seed_generator" in path for path in moved)  # attention + FFN dropout


def test_sequential_model():
    keras.utils.set_random_seed(0)
    seq = keras.Sequential([keras.Input((4,))] + [keras.layers.Dense(4, activation="tanh")
                                                   for _ in range(6)])
    wrapped = apply(seq, 2)
    assert len(_segments(wrapped)) == 2
    x = np.ones((3, 4), "float32")
    _same_outputs(seq, wrapped, x)
    compare(seq, wrapped, x)


def test_tenfold_models_keep_working():
    model = tenfold.models.small_resnet((8, 8, 1), 3, width=4, blocks=(2, 2, 2))
    wrapped = apply(model, "sqrt")
    assert len(_segments(wrapped)) >= 2
    compare(model, wrapped, np.random.default_rng(0).normal(size=(2, 8, 8, 1)).astype("float32"))
    mlp = tenfold.models.mlp((6,), 3, hidden=(8,) * 9)
    assert len(_segments(apply(mlp))) == 3


# ---------------------------------------------------------------- policies


def test_segments_are_balanced_by_activation_bytes():
    # a chain whose early layers are 8x wider: equal bytes, not equal layer counts
    i = keras.Input((4,))
    h = i
    for width in [64] * 4 + [8] * 12:
        h = keras.layers.Dense(width)(h)
    p = plan(keras.Model(i, h), 1)
    # one recomputed segment and a plain tail of about half the bytes each: the four wide
    # layers (4 x 256 B) against the twelve narrow ones (12 x 32 B) + the first wide ones
    assert len(p.segments) == 1
    assert len(p.segments[0]) < 4 <= len(p.plain) + 1


def test_policy_int_and_names():
    model = graphs.dag()
    assert len(_segments(apply(model, 3))) == 3
    p = plan(model, ["b0_add", "b1_add"])
    assert p.segments[0][-1] == "b0_add" and p.segments[1][-1] == "b1_add"
    assert "b2_conv1" in p.plain and p.plain[-1] == "logits"
    named = apply(model, ["b0_add", "b1_add"])
    assert len(_segments(named)) == 2
    # a cut after a layer that is not a cut point: the segment has two outputs
    inner = apply(model, ["b0_conv1"])
    assert len(_segments(inner)[0].layer.outputs) == 2
    compare(model, inner, graphs.dag_input())


def test_budget_bytes_picks_the_fewest_recomputations_that_fit():
    model = graphs.dag()
    plain = plan(model, 1, batch_size=4).plain_bytes
    assert plan(model, budget_bytes=plain, batch_size=4).segments == []  # fits plain
    tight = plan(model, budget_bytes=int(plain * 0.7), batch_size=4)
    assert tight.segments and tight.planned_bytes <= plain * 0.7
    looser = plan(model, budget_bytes=int(plain * 0.9), batch_size=4)
    assert looser.segments and looser.planned_bytes <= plain * 0.9
    recomputed = lambda p: sum(len(s) for s in p.segments)  # noqa: E731
    assert recomputed(looser) <= recomputed(tight)
    wrapped = apply(model, budget_bytes=int(plain * 0.7), batch_size=4)
    compare(model, wrapped, graphs.dag_input())
    with pytest.raises(ValueError, match="budget_bytes=10 is below what recomputation can reach"):
        plan(model, budget_bytes=10, batch_size=4)
    with pytest.raises(ValueError, match="budget_bytes needs batch_size"):
        plan(model, budget_bytes=10**9)
    with pytest.raises(ValueError, match="give policy or budget_bytes, not both"):
        plan(model, 2, budget_bytes=10**9, batch_size=4)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, received 0"):
        plan(model, batch_size=0)


def test_weight_gradients_make_early_segments_smaller():
    # with the batch known, the gradients of the weights count: a segment recomputed late
    # in the backward pass (an early one) runs while nearly all gradients exist already
    model = graphs.dag()
    per_example = plan(model, 2)
    assert per_example.batch_size is None
    with_grads = plan(model, 2, batch_size=1)
    assert with_grads.batch_size == 1 and with_grads.plain_bytes > per_example.plain_bytes
    assert len(with_grads.segments[0]) <= len(per_example.segments[0])


def test_balanced_cuts_and_segments_for():
    assert balanced_cuts([1] * 16, 4) == [0, 4, 8, 12]
    assert balanced_cuts([4] * 4 + [2] * 4 + [1] * 4 + [0.5] * 4, 4) == [0, 2, 4, 8]
    assert balanced_cuts([100, 1, 1, 1], 4) == [0, 1, 2, 3]
    assert balanced_cuts([1, 1, 1, 100], 2) == [0, 3]
    with pytest.raises(ValueError, match="count must be between 1 and 3, received 4"):
        balanced_cuts([1, 1, 1], 4)
    assert [segments_for("sqrt", n) for n in (1, 2, 4, 9, 16, 20)] == [1, 1, 2, 3, 4, 4]


@pytest.mark.parametrize(
    "policy,error,match",
    [
        ("cube", ValueError, "policy must be one of 'sqrt', received 'cube'"),
        (0, ValueError, "policy must be an integer >= 1, received 0"),
        (99, ValueError, "asks for 99 recomputed segments but model 'dag' has"),
        (1.5, TypeError, "policy must be 'sqrt', an int or a list of layer names"),
        (True, TypeError, "policy must be 'sqrt', an int or a list of layer names"),
        (["b0_ad"], ValueError, "names layer 'b0_ad', which is not in model 'dag'.*Did you mean 'b0_add'"),
        ([], ValueError, "must not be empty"),
    ],
)
def test_bad_policy(policy, error, match):
    with pytest.raises(error, match=match):
        apply(graphs.dag(), policy)


def test_subclassed_and_unbuilt_models_are_refused_by_name():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = keras.layers.Dense(2)

        def call(self, x):
            return self.d(x)

    with pytest.raises(TypeError, match="received <Net.*subclassed model has no graph"):
        apply(Net())
    with pytest.raises(ValueError, match="Sequential model that is not built"):
        apply(keras.Sequential([keras.layers.Dense(2)]))
    i = keras.Input((3,))
    with pytest.raises(ValueError, match="has no cut point"):
        apply(keras.Model(i, keras.layers.Dense(2)(i)))


def test_saved_and_loaded_with_the_segments():
    import os
    import tempfile

    model = apply(graphs.two_in_two_out(), 2)
    x = graphs.two_inputs()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.keras")
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
    assert len(_segments(loaded)) == 2
    _same_outputs(model, loaded, x)
