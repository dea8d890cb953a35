"""The bundled recipes of issue 4 (digits-acnet, digits-nf-agc) end to end, tiny runs."""

import json

import keras
import numpy as np
import pytest

import tenfold
from tenfold.train.recipe import load_recipe
from tenfold.train.run import run


@pytest.mark.parametrize("name", ["digits-acnet", "digits-nf-agc"])
def test_bundled_recipe_trains_deploys_and_checks(name, tmp_path):
    recipe = load_recipe(name, ["train.epochs=2", "train.verbose=0", "model.width=4", "model.blocks=[1,1]"])
    metrics = run(recipe, tmp_path / name, force=True, log=lambda s: None)
    deploy = metrics["run"]["deploy"]
    assert deploy["fused"] is True
    assert deploy["max_relative_difference"] < 1e-5
    assert deploy["prediction_agreement"] == 1.0
    fused = keras.saving.load_model(tmp_path / name / "deploy" / "model.keras", safe_mode=True)
    trained = keras.saving.load_model(tmp_path / name / "model.keras", safe_mode=True)
    x = tenfold.data.load("digits").x_test[:32]
    np.testing.assert_allclose(
        fused.predict(x, verbose=0), trained.predict(x, verbose=0), atol=1e-3, rtol=1e-4
    )
    assert (tmp_path / name / "deploy" / "saved_model" / "saved_model.pb").is_file()
    assert "Deploy: fused model in `deploy/`" in (tmp_path / name / "report.md").read_text()
    on_disk = json.loads((tmp_path / name / "metrics.json").read_text())
    assert on_disk["run"]["deploy"]["max_abs_difference"] == deploy["max_abs_difference"]
    if name == "digits-acnet":
        assert deploy["deployed_parameters"] < deploy["parameters"]
        assert not any(isinstance(layer, tenfold.layers.ACBlock) and not layer.deploy for layer in fused._flatten_layers())


@pytest.mark.slow
@pytest.mark.parametrize("override", ["model.conv=repvgg", "model.norm=ebn"])
def test_switches_in_recipes(override, tmp_path):
    recipe = load_recipe("digits-acnet", ["train.epochs=1", "train.verbose=0", "model.width=4", override])
    metrics = run(recipe, tmp_path / "r", force=True, log=lambda s: None)
    assert metrics["run"]["deploy"]["max_relative_difference"] < 1e-5


def test_unknown_switch_is_rejected():
    with pytest.raises(ValueError, match="acnet"):
        load_recipe("digits-acnet", ["model.conv=acnett"])
