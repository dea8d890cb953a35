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


@pytest.mark.parametrize(
    "make,error,match",
    [
        (lambda: models.NFResidualBlock(4, conv=3), TypeError, r"conv must be a string, received 3 of type int"),
        (lambda: models.ResidualBlock(4, norm="batchnorm"), ValueError,
         r"norm must be one of .*'bn'.*, received 'batchnorm'"),
        (lambda: models.ResidualBlock(4, activation="bogus"), ValueError,
         r"activation must be a Keras activation name .*received 'bogus'"),
        (lambda: models.ResidualBlock("8"), TypeError, r"filters must be an integer, received '8' of type str"),
        (lambda: models.ResidualBlock(4, fused="no"), TypeError, r"fused must be True or False"),
        (lambda: models.NFResidualBlock(4, alpha=float("inf")), ValueError, r"alpha must be a finite number"),
        (lambda: models.ScaledActivation("relu", gamma=0.0), ValueError, r"gamma must be a number > 0"),
        (lambda: models.small_resnet((8, 8, 1), 10, blocks=[]), ValueError,
         r"blocks must be a non-empty list of integers, received \[\]"),
        (lambda: models.small_resnet((8, 8, 1), 10, blocks=[1, 0]), ValueError,
         r"blocks\[1\] must be an integer >= 1, received 0"),
        (lambda: models.small_resnet((8, 8, 1), 10, activation="bogus"), ValueError,
         r"activation must be a Keras activation name"),
        (lambda: models.small_resnet((8, -8, 1), 10), ValueError, r"input_shape\[1\] must be an integer >= 1"),
        (lambda: models.mlp((4,), 3, hidden=[-5]), ValueError, r"hidden\[0\] must be an integer >= 1, received -5"),
        (lambda: models.mlp((4,), 3, dropout=1.0), ValueError, r"dropout must be a number >= 0 and < 1"),
        (lambda: models.nf_resnet((8, 8, 1), 10, conv=None), TypeError, r"conv must be a string"),
    ],
)
def test_bad_model_arguments_are_named(make, error, match):
    with pytest.raises(error, match=match):
        make()
