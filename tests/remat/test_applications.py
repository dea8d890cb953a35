"""remat.apply on keras.applications models and KerasHub's BertBackbone (weights=None, small
inputs): segments at their cut points, gradients and BatchNormalization statistics equal to
the plain model's."""

import time

import keras
import numpy as np
import pytest
from gradcheck import compare

from tenfold.remat import Recompute, apply, plan

APPS = {
    # name: (constructor, a cut point it must have, input size)
    "ResNet50": (keras.applications.ResNet50, "conv3_block1_out", 32),
    "MobileNetV2": (keras.applications.MobileNetV2, "block_2_add", 32),
    "EfficientNetB0": (keras.applications.EfficientNetB0, "block2b_add", 32),
    "ConvNeXtTiny": (keras.applications.ConvNeXtTiny, "convnext_tiny_downsampling_block_0/convnext_tiny_downsampling_conv_0", 32),
}


@pytest.mark.parametrize(
    "name",
    # about 10-15 s each on 2 cores; ConvNeXtTiny about 40 s
    [n if n != "ConvNeXtTiny" else pytest.param(n, marks=pytest.mark.slow) for n in sorted(APPS)],
)
def test_keras_applications_gradients_equal(name):
    make, cut, size = APPS[name]
    keras.utils.set_random_seed(0)
    model = make(weights=None, input_shape=(size, size, 3), classes=10)
    p = plan(model, "sqrt")
    assert cut in p.cut_points, p.cut_points[:20]
    wrapped = apply(model, "sqrt")
    segments = [layer for layer in wrapped.layers if isinstance(layer, Recompute)]
    assert len(segments) >= 3
    x = np.random.default_rng(0).uniform(0, 255, size=(2, size, size, 3)).astype("float32")
    start = time.perf_counter()
    moved = compare(model, wrapped, x)
    assert time.perf_counter() - start < 600
    if name != "ConvNeXtTiny":  # ConvNeXt has LayerNormalization, no BatchNormalization
        assert any("moving_mean" in path for path in moved)


def test_kerashub_bert_backbone_three_inputs_two_outputs():
    keras_hub = pytest.importorskip("keras_hub")
    keras.utils.set_random_seed(0)
    model = keras_hub.models.BertBackbone(
        vocabulary_size=100, num_layers=2, num_heads=2, hidden_dim=128, intermediate_dim=256,
        max_sequence_length=16,
    )
    p = plan(model, "sqrt")
    # the padding mask input feeds every transformer layer: a side input, not a blocker
    assert {"transformer_layer_0", "transformer_layer_1"} <= set(p.cut_points)
    wrapped = apply(model, "sqrt")
    segments = [layer for layer in wrapped.layers if isinstance(layer, Recompute)]
    assert len(segments) >= 2
    assert max(len(s.layer.inputs) for s in segments) >= 2  # the hidden states + the mask
    assert sorted(wrapped.output) == ["pooled_output", "sequence_output"]
    rng = np.random.default_rng(0)
    x = {
        "token_ids": rng.integers(1, 100, size=(2, 16)).astype("int32"),
        "segment_ids": np.zeros((2, 16), "int32"),
        "padding_mask": np.ones((2, 16), "int32"),
    }
    x["padding_mask"][0, 10:] = 0
    for a, b in zip(keras.tree.flatten(model(x)), keras.tree.flatten(wrapped(x))):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-6)
    moved = compare(model, wrapped, x)
    assert any("self_attention_layer" in path for path in moved)  # attention dropout replayed
