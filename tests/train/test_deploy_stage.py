"""The deploy stage checks the fused model against the trained one evaluated in float32."""

import json

import keras
import numpy as np

import tenfold
from tenfold.train.deploy import compare
from tenfold.train.recipe import load_recipe
from tenfold.train.run import run

BF16_RESNET = ["precision.policy=mixed_bfloat16", "model.name=small_resnet", "model.norm=bn",
               "model.width=4", "model.blocks=[1,1]", "train.epochs=1", "train.verbose=0"]


def _bf16_resnet():
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = tenfold.models.small_resnet((8, 8, 1), 10, width=4, blocks=(1, 1), norm="bn")
    rng = np.random.default_rng(0)
    for v in model.weights:  # statistics away from the identity, so folding changes weights
        if v.path.endswith("moving_variance"):
            v.assign(rng.uniform(0.5, 1.5, v.shape))
        elif v.path.endswith("moving_mean"):
            v.assign(rng.normal(0.0, 0.2, v.shape))
    keras.config.set_dtype_policy("float32")
    return model


def test_compare_measures_the_fusion_not_bfloat16_rounding():
    model = _bf16_resnet()
    fused = tenfold.reparam.deploy(model)
    x = tenfold.data.load("digits").x_test[:128]
    facts = compare(model, fused, x)
    assert facts["compared_in"] == "float32"
    assert facts["max_relative_difference"] <= 1e-5
    assert facts["predictions_changed"] == 0 and facts["predictions_compared"] == 128
    assert facts["prediction_agreement"] == 1.0
    assert facts["bn_total"] == tenfold.reparam.count_norms(model) > 0
    assert facts["bn_folded"] == facts["bn_total"] and facts["bn_remaining"] == 0
    # the bfloat16 model's own predictions are what the old check measured: far above 1e-5
    own = model.predict(x, verbose=0).astype("float64")
    ref = fused.predict(x, verbose=0).astype("float64")
    assert np.max(np.abs(own - ref)) / np.max(np.abs(own)) > 1e-4


def test_compare_on_no_inputs_still_counts_norms():
    model = _bf16_resnet()
    facts = compare(model, tenfold.reparam.deploy(model), np.zeros((0, 8, 8, 1), "float32"))
    assert facts["predictions_compared"] == 0 and facts["prediction_agreement"] == 1.0
    assert facts["bn_folded"] == facts["bn_total"] > 0


def test_mixed_bfloat16_run_deploys_within_1e_5_in_float32(tmp_path):
    metrics = run(load_recipe("tiny", BF16_RESNET), tmp_path / "r", force=True, log=lambda s: None)
    facts = metrics["run"]["deploy"]
    assert facts["fused"] is True and facts["compared_in"] == "float32"
    assert facts["max_relative_difference"] <= 1e-5
    assert facts["predictions_changed"] == 0 and facts["predictions_compared"] > 0
    assert facts["bn_total"] > 0 and facts["bn_folded"] == facts["bn_total"] and facts["bn_remaining"] == 0
    on_disk = json.loads((tmp_path / "r" / "deploy" / "deploy.json").read_text())
    assert on_disk["bn_folded"] == facts["bn_folded"]
    assert on_disk["max_relative_difference"] == facts["max_relative_difference"]
    assert "batch norms folded" in (tmp_path / "r" / "report.md").read_text()
