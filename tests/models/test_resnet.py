import numpy as np
import pytest

from tenfold import models


def test_small_resnet_shapes_and_head():
    model = models.small_resnet((8, 8, 1), 10, width=8, blocks=(1, 2))
    out = model(np.zeros((3, 8, 8, 1), "float32"))
    assert tuple(out.shape) == (3, 10)
    assert model.get_layer("classifier").dtype_policy.name == "float32"
    names = [layer.name for layer in model.layers]
    assert ["stage1_block1", "stage2_block1", "stage2_block2"] == [n for n in names if n.startswith("stage")]
    # stage 2 halves the resolution and doubles the width
    assert model.get_layer("stage2_block1").output.shape[1:] == (4, 4, 16)


def test_residual_block_identity_shortcut_when_shapes_match():
    block = models.ResidualBlock(4)
    block(np.zeros((1, 6, 6, 4), "float32"))
    assert block.shortcut_conv is None
    down = models.ResidualBlock(4, strides=2)
    down(np.zeros((1, 6, 6, 4), "float32"))
    assert down.shortcut_conv is not None


def test_mlp():
    model = models.mlp((8, 8, 1), 3, hidden=(5,), dropout=0.1)
    assert tuple(model(np.zeros((2, 8, 8, 1))).shape) == (2, 3)


def test_bad_switches_and_arguments():
    with pytest.raises(ValueError, match=r"conv must be one of .*'plain'.*, received 'nope'"):
        models.small_resnet((8, 8, 1), 10, conv="nope")
    with pytest.raises(ValueError, match=r"blocks must be a non-empty list of integers, received \(\)"):
        models.small_resnet((8, 8, 1), 10, blocks=())
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2, received 1"):
        models.small_resnet((8, 8, 1), 1)
    with pytest.raises(ValueError, match="strides must be one of 1, 2, received 3"):
        models.ResidualBlock(4, strides=3)
