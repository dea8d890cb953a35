"""Trainer keys of issue 5: data.echo, precision, model.remat — validation, wiring, and a
tiny end-to-end run whose report states the precision, XLA and fresh-example count."""

import json

import keras
import pytest
import tensorflow as tf

from tenfold.remat import Recompute
from tenfold.train import data as run_data
from tenfold.train.model import build_model
from tenfold.train.recipe import RecipeError, load_recipe
from tenfold.train.run import run


def test_bundled_recipes_use_the_keys():
    default = load_recipe(None)
    assert default.precision.policy == "auto"
    speed = load_recipe("digits-speed")
    assert speed.data.echo.factor == 2 and speed.data.echo.placement == "after_augmentation"
    assert speed.model.remat == "sqrt" and speed.precision.policy == "auto"


@pytest.mark.parametrize(
    "override,match",
    [
        ("data.echo.factor=0.5", "factor"),
        ("data.echo.level=epoch", "level"),
        ("data.echo.placment=before_augmentation", "placement"),
        ("precision.policy=bf16", "policy"),
        ("precision.jit_compile=maybe", "jit_compile"),
        ("model.remat=0", "remat segment count must be >= 1"),
        ("model.remat=cube", "remat"),
    ],
)
def test_bad_values_are_refused_at_load(override, match):
    with pytest.raises(RecipeError, match=match):
        load_recipe("tiny", [override])


@pytest.mark.parametrize(
    "echo,expected",
    [
        ("null", 17),
        ("{factor: 2}", 34),
        ("{factor: 1.5}", 26),
        ("{factor: 3, level: batch}", 51),
    ],
)
def test_steps_per_epoch_count_the_echo(echo, expected):
    recipe = load_recipe("tiny", [f"data.echo={echo}"])
    data = run_data.build_data(recipe.data, seed=recipe.seed)
    assert len(data.splits.y_train) == 1077 and recipe.data.batch_size == 64
    assert run_data.steps_per_epoch(recipe.data, len(data.splits.y_train)) == expected


@pytest.mark.parametrize("placement", ["before_augmentation", "after_augmentation"])
def test_train_dataset_echoes_at_the_placement(placement):
    recipe = load_recipe("tiny", [
        f"data.echo={{factor: 2, placement: {placement}, shuffle_buffer: 1}}",
        "data.augment.random_translation=0.1",
    ])
    data = run_data.build_data(recipe.data, seed=recipe.seed)
    echo = run_data.build_echo(recipe.data, seed=recipe.seed)
    ds = run_data.train_dataset(recipe.data, data, echo, seed=recipe.seed, epochs=recipe.train.epochs)
    x, _ = next(iter(ds))
    # shuffle_buffer 1 keeps copies adjacent: echoed before augmentation they differ, after
    # augmentation they are identical
    same = bool(tf.reduce_all(tf.equal(x[0], x[1])))
    assert same is (placement == "after_augmentation")
    assert echo is not None and echo.factor == 2


def test_model_remat_wraps_segments():
    recipe = load_recipe(None, ["model.blocks=[2,2]", "model.remat=2", "data.imbalance_factor=null"])
    data = run_data.build_data(recipe.data, seed=recipe.seed)
    model = build_model(recipe.model, data.splits.input_shape, data.num_classes)
    assert sum(isinstance(layer, Recompute) for layer in model.layers) == 2
    recipe = load_recipe(None, ["model.remat=[nope]"])
    with pytest.raises(RecipeError, match="model.remat: policy names layer"):
        build_model(recipe.model, data.splits.input_shape, data.num_classes)


def test_tiny_run_reports_precision_xla_and_fresh_examples(tmp_path):
    recipe = load_recipe("tiny", [
        "train.epochs=2", "train.verbose=0", "data.echo={factor: 2}",
        "precision={policy: mixed_bfloat16, jit_compile: false}", "model.remat=sqrt",
        "model.hidden=[32,32,32,32]",
    ])
    metrics = run(recipe, tmp_path / "run", force=True, log=lambda s: None)
    facts = metrics["run"]
    assert facts["precision"]["policy"] == "mixed_bfloat16"
    assert facts["precision"]["xla"] is False
    assert facts["precision"]["float32_layers"] == ["classifier"]
    assert facts["fresh_examples"] == 2 * 1077
    assert facts["steps_per_epoch"] == 34
    report = (tmp_path / "run" / "report.md").read_text()
    assert "precision: mixed_bfloat16" in report and "XLA off" in report
    assert "2154 fresh examples read" in report
    history = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert "fresh_examples" in history[0]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["run"]["fresh_examples"] == 2154
    assert keras.config.dtype_policy().name == "mixed_bfloat16"  # the conftest resets it
