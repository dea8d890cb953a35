"""Recipes train the user's model: keras.applications names, .keras files, factories."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import tenfold
from tenfold.train.data import build_data, with_channels
from tenfold.train.model import build_model
from tenfold.train.recipe import RecipeError, application_names, load_recipe
from tenfold.train.run import run

QUIET = ["train.epochs=1", "train.verbose=0"]
FACTORY = '''
import keras


def tiny_cnn(input_shape, num_classes, width=4):
    inputs = keras.Input(input_shape)
    h = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name="conv")(inputs)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(num_classes, name="head")(h), name="tiny_cnn")


def not_a_model(input_shape, num_classes):
    return "model"
'''


@pytest.fixture
def factory_module(tmp_path, monkeypatch):
    (tmp_path / "user_models.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("user_models", None)
    yield "user_models"
    sys.modules.pop("user_models", None)


def test_keras_applications_name_builds_logits_from_scratch_for_the_data():
    recipe = load_recipe("digits-mobilenet")
    assert recipe.model.name == "keras.applications.MobileNetV2" and recipe.model.options == {"alpha": 0.35}
    data = build_data(recipe.data, seed=0)
    assert data.splits.input_shape == (32, 32, 3)
    model = build_model(recipe.model, data.splits.input_shape, data.num_classes, max_parameters=10**8)
    assert tuple(model.inputs[0].shape[1:]) == (32, 32, 3) and tuple(model.outputs[0].shape) == (None, 10)
    head = model.layers[-1]
    assert isinstance(head, keras.layers.Dense)
    assert keras.activations.serialize(head.activation) == "linear"  # logits, not softmax
    reference = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10)
    assert model.count_params() == reference.count_params()
    assert tenfold.reparam.count_norms(model) == 52
    norms = [la for la in model.layers if isinstance(la, keras.layers.BatchNormalization)]
    assert len(norms) == 52 and {la.momentum for la in norms} == {0.9}  # model.bn_momentum
    assert {la.momentum for la in reference.layers if isinstance(la, keras.layers.BatchNormalization)} == {0.999}


def test_keras_applications_without_top_gets_a_float32_dense_classifier():
    keras.config.set_dtype_policy("mixed_bfloat16")
    recipe = load_recipe("tiny", ["model.name=keras.applications.MobileNetV2",
                                  "model.options={alpha: 0.35, include_top: false}"])
    model = build_model(recipe.model, (32, 32, 3), 7)
    assert model.get_layer("classifier").units == 7
    assert keras.backend.standardize_dtype(model.outputs[0].dtype) == "float32"


@pytest.mark.parametrize(
    "overrides,match",
    [(["model.name=keras.applications.MobilenetV2"], r"Did you mean 'keras\.applications\.MobileNetV2'\?.*ResNet50"),
     (["model.name=ResNet50"], r"Did you mean 'keras\.applications\.ResNet50'\?"),
     (["model.name=keras.applications.MobileNetV2", "model.options={alpah: 0.35}"], r"'alpha'\?"),
     (["model.name=keras.applications.MobileNetV2", "model.options={weights: imagenet}"], r"weights=None"),
     (["model.name=keras.applications.MobileNetV2", "model.options={classes: 3}"], r"from the data")],
)
def test_bad_application_names_and_options(overrides, match):
    with pytest.raises(RecipeError, match=match):
        recipe = load_recipe("tiny", overrides)
        build_model(recipe.model, (32, 32, 3), 10)


def test_too_small_images_say_how_to_resize():
    recipe = load_recipe("tiny", ["model.name=keras.applications.MobileNetV2"])
    with pytest.raises(RecipeError, match=r"at least 32x32.*data\.image_size"):
        build_model(recipe.model, (8, 8, 1), 10)


def test_one_model_source_and_no_switches_for_user_models():
    assert load_recipe("tiny", ["model.path=m.keras"]).model.name is None  # the override replaces mlp
    with pytest.raises(RecipeError, match="exactly one of model.name, model.path, model.factory"):
        load_recipe("tiny", ["model.path=m.keras", "model.name=mlp"])
    with pytest.raises(RecipeError, match=r"model\.width: shapes tenfold's own"):
        load_recipe("tiny", ["model.factory=a:b", "model.width=8"])
    with pytest.raises(RecipeError, match=r"model\.path: must be a \.keras file"):
        load_recipe("tiny", ["model.path=m.h5"])
    with pytest.raises(RecipeError, match=r"package\.module:function"):
        load_recipe("tiny", ["model.factory=user_models.tiny_cnn"])
    assert "MobileNetV2" in application_names() and "ResNet50" in application_names()


def test_factory_model_trains_converted_and_deploys(tmp_path, factory_module):
    recipe = load_recipe("tiny", [*QUIET, f"model.factory={factory_module}:tiny_cnn",
                                  "model.options={width: 6}", "model.convert={conv: acnet, norm: ebn}"])
    metrics = run(recipe, tmp_path / "r", force=True, log=lambda s: None)
    trained = keras.saving.load_model(tmp_path / "r" / "model.keras", safe_mode=True)
    kinds = {type(layer).__name__ for layer in trained.layers}
    assert {"ACBlock", "ExtendedBatchNormalization"} <= kinds and "Conv2D" not in kinds
    facts = metrics["run"]["deploy"]
    assert facts["fused"] and facts["max_relative_difference"] <= 1e-5 and facts["predictions_changed"] == 0
    assert facts["bn_remaining"] == 0 and facts["bn_folded"] == facts["bn_total"] > 0


def test_bad_factories(factory_module):
    for spec, match in [(f"{factory_module}:tiny_cn", r"no function 'tiny_cn'\. Did you mean 'tiny_cnn'\?"),
                        (f"{factory_module}:not_a_model", r"returned str, not a keras\.Model"),
                        ("no_such_module_xyz:build", r"cannot import module 'no_such_module_xyz'")]:
        recipe = load_recipe("tiny", [f"model.factory={spec}"])
        with pytest.raises(RecipeError, match=match):
            build_model(recipe.model, (8, 8, 1), 10)
    recipe = load_recipe("tiny", [f"model.factory={factory_module}:tiny_cnn", "model.options={depth: 3}"])
    with pytest.raises(RecipeError, match=r"model\.factory: .*depth=3\) failed"):
        build_model(recipe.model, (8, 8, 1), 10)


def test_keras_file_model_trains_with_remat(tmp_path, factory_module):
    import user_models

    path = tmp_path / "mine.keras"
    user_models.tiny_cnn((8, 8, 1), 10).save(path)
    recipe = load_recipe("tiny", [*QUIET, f"model.path={path}", "model.remat=2"])
    metrics = run(recipe, tmp_path / "r", force=True, log=lambda s: None)
    trained = keras.saving.load_model(tmp_path / "r" / "model.keras", safe_mode=True)
    assert any(isinstance(layer, tenfold.remat.Recompute) for layer in trained._flatten_layers())
    assert metrics["run"]["deploy"]["max_relative_difference"] <= 1e-5


def test_keras_file_that_does_not_fit_the_data(tmp_path, factory_module):
    import user_models

    path = tmp_path / "rgb.keras"
    user_models.tiny_cnn((8, 8, 3), 10).save(path)
    recipe = load_recipe("tiny", [f"model.path={path}"])
    with pytest.raises(RecipeError, match=r"data\.image_size.*data\.channels"):
        build_model(recipe.model, (8, 8, 1), 10)
    with pytest.raises(RecipeError, match=r"outputs of shape \(10,\), the data has 12 classes"):
        build_model(recipe.model, (8, 8, 3), 10 + 2)
    with pytest.raises(RecipeError, match="does not exist"):
        build_model(load_recipe("tiny", [f"model.path={tmp_path / 'missing.keras'}"]).model, (8, 8, 1), 10)


def test_channels_and_image_size_in_the_data_stage():
    x = np.random.default_rng(0).uniform(size=(5, 4, 4, 3)).astype("float32")
    grey = with_channels(x, 1)
    reference = x.astype("float64") @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(grey[..., 0], reference, rtol=1e-6)
    rgb = with_channels(grey, 3)
    assert rgb.shape == (5, 4, 4, 3) and np.array_equal(rgb[..., 0], rgb[..., 2])
    data = build_data(load_recipe("tiny", ["data.image_size=[16, 12]", "data.channels=3"]).data, seed=0)
    assert data.splits.x_test.shape[1:] == (16, 12, 3)
    with pytest.raises(RecipeError, match=r"data\.image_size"):
        load_recipe("tiny", ["data.image_size=[16, 12, 3]"])


def test_cli_bad_model_name_exits_2_listing_names(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
    proc = subprocess.run(
        [sys.executable, "-m", "tenfold", "train", "tiny", "--out", str(tmp_path / "r"),
         "--set", "model.name=keras.applications.MobileNetV9"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "keras.applications.MobileNetV2" in proc.stderr and "EfficientNetB0" in proc.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_digits_mobilenet_trains_end_to_end(tmp_path):
    recipe = load_recipe("digits-mobilenet", ["train.epochs=2", "train.verbose=0"])
    metrics = run(recipe, tmp_path / "r", force=True, log=lambda s: None)
    facts = metrics["run"]["deploy"]
    assert facts["bn_total"] == 52 and facts["bn_folded"] == 52
    assert facts["max_relative_difference"] <= 1e-5 and facts["predictions_changed"] == 0
    assert json.loads((tmp_path / "r" / "deploy" / "deploy.json").read_text())["bn_remaining"] == 0
