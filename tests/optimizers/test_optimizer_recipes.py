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
