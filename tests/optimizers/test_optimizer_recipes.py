"""Optimizer and AGC recipe keys, and the bundled digits-adafactor-agc recipe end to end."""

import os
import subprocess
import sys

import keras
import pytest

import tenfold  # noqa: F401
from tenfold.optimizers import AGC, SM3, Adafactor
from tenfold.train.optimization import build_optimizer
from tenfold.train.recipe import RecipeError, load_recipe


def test_bundled_recipe_builds_adafactor_in_agc_that_skips_the_classifier():
    recipe = load_recipe("digits-adafactor-agc")
    opt = build_optimizer(recipe.optimizer, recipe.agc, float(recipe.optimizer.learning_rate))
    assert isinstance(opt, AGC) and isinstance(opt.inner_optimizer, Adafactor)
    assert opt.clipping == recipe.agc.clipping
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, name="hidden"),
                              keras.layers.Dense(3, name="classifier")])
    opt.build(model.trainable_variables)
    # Sequential prefixes the paths ("sequential/classifier/kernel")
    excluded = {v.path.split("/", 1)[1]: rule[0] for v, rule in zip(model.trainable_variables, opt._rules)}
    assert excluded == {"hidden/kernel": False, "hidden/bias": False,
                        "classifier/kernel": True, "classifier/bias": True}


def test_agc_off_by_default_and_optimizer_names():
    recipe = load_recipe("tiny", ["optimizer.name=sm3", "optimizer.learning_rate=0.05"])
    assert recipe.agc.clipping is None
    opt = build_optimizer(recipe.optimizer, recipe.agc, 0.05)
    assert isinstance(opt, SM3)
    recipe = load_recipe("tiny", ["optimizer.name=sgd", "agc.clipping=0.02", "agc.exclude=[head]"])
    opt = build_optimizer(recipe.optimizer, recipe.agc, 0.1)
    assert isinstance(opt, AGC) and isinstance(opt.inner_optimizer, keras.optimizers.SGD)
    assert "head" in opt.exclude


@pytest.mark.parametrize(
    "override,text",
    [("agc.clip=0.1", "agc.clipping"), ("agc.clipping=-1", "agc.clipping"),
     ("agc.epsilon=-0.1", "agc.epsilon")],
)
def test_bad_agc_keys(override, text):
    with pytest.raises(RecipeError, match=text):
        load_recipe("tiny", [override])


def test_bad_regex_is_a_recipe_error():
    recipe = load_recipe("tiny", ["agc.clipping=0.1", "agc.exclude=['(']"])
    with pytest.raises(RecipeError, match="agc"):
        build_optimizer(recipe.optimizer, recipe.agc, 0.1)


def test_digits_adafactor_agc_trains_end_to_end(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
    proc = subprocess.run(
        [sys.executable, "-m", "tenfold", "train", "digits-adafactor-agc", "--out", str(out),
         "--set", "train.epochs=2", "--set", "model.name=mlp", "--set", "model.hidden=[32]",
         "--set", "train.verbose=0"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    model = keras.saving.load_model(out / "model.keras", safe_mode=True)
    assert isinstance(model.optimizer, AGC)
    assert isinstance(model.optimizer.inner_optimizer, Adafactor)
    assert int(model.optimizer.iterations) > 0


def test_digits_nf_agc_run_leaves_the_classifier_found_from_the_model_and_clips_by_layer_type(tmp_path):
    from tenfold.train.build import build

    recipe = load_recipe("digits-nf-agc", ["model.width=4", "model.blocks=[1,1]", "train.epochs=2"])
    built = build(recipe, tmp_path / "never-written", log=lambda s: None)
    assert not (tmp_path / "never-written").exists()
    opt = built.model.optimizer
    assert isinstance(opt, AGC) and opt.clipping == recipe.agc.clipping
    opt.build(built.model.trainable_variables)
    excluded = set(opt.excluded_variables())
    head = built.model.get_layer("classifier")
    # the classifier from the graph, exact paths (for_model), plus the recipe's skip gains
    assert {w.path for w in head.trainable_weights} <= excluded
    assert "auto" not in opt.exclude  # resolved by for_model into the classifier's exact paths
    assert AGC.classifier_patterns(built.model) == list(opt.exclude)[:2]
    assert all("skip_gain" in p for p in excluded - {w.path for w in head.trainable_weights})
    assert any("skip_gain" in p for p in excluded)
    axes = opt.variable_axes()
    kernels = [w for w in built.model.trainable_variables if w.path not in excluded and len(w.shape) == 4]
    assert kernels  # conv kernels are clipped per output channel: all axes but the last
    assert all(axes[w.path] == [0, 1, 2] for w in kernels)
    assert all(axes[w.path] == list(range(len(w.shape))) for w in built.model.trainable_variables
               if w.path not in excluded and len(w.shape) <= 1)
    assert any("AGC: clipping 0.04" in note and "classifier" in note for note in built.notes)


def test_agc_epsilon_must_be_positive():
    with pytest.raises(RecipeError, match=r"agc\.epsilon"):
        load_recipe("tiny", ["agc.clipping=0.1", "agc.epsilon=0"])


def test_agc_classifier_found_whatever_its_name(tmp_path):
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.DepthwiseConv2D(3, name="dw")(inputs)
    h = keras.layers.Conv2D(4, 1, name="pw")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inputs, keras.layers.Dense(10, name="logits")(h), name="net")
    recipe = load_recipe("tiny", ["optimizer.name=sgd", "agc.clipping=0.02"])
    opt = build_optimizer(recipe.optimizer, recipe.agc, 0.1, model=model)
    opt.build(model.trainable_variables)
    head = model.get_layer("logits")
    assert sorted(opt.excluded_variables()) == sorted([head.bias.path, head.kernel.path])
    axes = opt.variable_axes()
    # DepthwiseConv2D: per channel (spatial axes), not the rank rule's all-but-last
    assert axes[model.get_layer("dw").kernel.path] == [0, 1]
    assert axes[model.get_layer("pw").kernel.path] == [0, 1, 2]
