"""The trainer's long-tail keys: loss.name aliases, model.head, data.sampler, callbacks.drw,
evaluate.posthoc — tiny end-to-end runs on long-tailed digits."""

import dataclasses
import json

import numpy as np
import pytest

from tenfold.losses import BalancedSoftmaxLoss, LDAMLoss, LogitAdjustedLoss
from tenfold.train.build import build
from tenfold.train.fit import fit
from tenfold.train.optimization import build_loss
from tenfold.train.recipe import RecipeError, load_recipe
from tenfold.train.run import run

TINY = ["model.name=mlp", "model.hidden=[32]", "train.verbose=0", "data.augment.random_translation=0"]


def test_default_recipe_trains_with_a_long_tail_loss_and_posthoc_rows():
    recipe = load_recipe("default")
    assert recipe.loss.name == "balanced_softmax"
    assert recipe.evaluate.posthoc.adjust_logits and recipe.evaluate.posthoc.tau_norm
    for name in ("digits-ldam-drw", "digits-decoupled"):
        load_recipe(name)  # bundled long-tail recipes validate


def test_loss_aliases_and_bad_names():
    counts = [50, 5, 1]

    def loss_of(recipe):
        return build_loss(recipe.loss, recipe.callbacks.drw, counts)

    loss = loss_of(load_recipe("default"))
    assert isinstance(loss, BalancedSoftmaxLoss) and loss.class_counts == [50, 5, 1]
    loss = loss_of(load_recipe("default", ["loss.name=ldam", "loss.options={scale: 10}"]))
    assert isinstance(loss, LDAMLoss) and loss.scale == 10.0
    # cross-entropy + DRW trains LogitAdjustedLoss(tau=0), i.e. cross-entropy with class weights
    loss = loss_of(load_recipe("default", ["loss.name=cross_entropy", "callbacks.drw={}"]))
    assert isinstance(loss, LogitAdjustedLoss) and loss.tau == 0.0
    with pytest.raises(RecipeError, match=r"loss.name: unknown loss 'ldma';.*Did you mean 'ldam'"):
        load_recipe("default", ["loss.name=ldma"])
    with pytest.raises(RecipeError, match=r"unknown key 'callbacks.dwr'. Did you mean 'callbacks.drw'"):
        load_recipe("default", ["callbacks.dwr.beta=0.9"])
    with pytest.raises(RecipeError, match=r"data.sampler: .*'class_balanced'.*received 'balanced'"):
        load_recipe("default", ["data.sampler=balanced"])
    with pytest.raises(RecipeError, match=r"loss: cannot build 'logit_adjusted'.*tau must be"):
        loss_of(load_recipe("default", ["loss.name=logit_adjusted", "loss.options={tau: x}"]))


def test_drw_switches_inside_the_trainer(tmp_path):
    recipe = load_recipe("digits-ldam-drw", [*TINY, "train.epochs=3", "callbacks.drw.start_epoch=2"])
    built = build(recipe, tmp_path / "run", log=lambda s: None)
    assert built.model.get_layer("classifier").__class__.__name__ == "NormedDense"
    (tmp_path / "run").mkdir()
    weights_per_epoch = []

    import keras

    class Probe(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            weights_per_epoch.append(built.model.loss.class_weights.copy())

    fit(dataclasses.replace(built, callbacks=(*built.callbacks, Probe())), resume=None)
    assert np.allclose(weights_per_epoch[0], 1.0) and np.allclose(weights_per_epoch[1], 1.0)
    counts = np.asarray(built.data.class_counts, float)
    expected = (1 - 0.9999) / (1 - 0.9999**counts)
    np.testing.assert_allclose(weights_per_epoch[2], expected / expected.sum() * len(counts), rtol=1e-5)


def test_posthoc_rows_and_progressive_sampler_end_to_end(tmp_path):
    recipe = load_recipe("digits-decoupled", [
        *TINY, "train.epochs=2", "data.sampler=progressive", "evaluate.posthoc.crt_epochs=1",
        "evaluate.posthoc.tau=search",
    ])
    metrics = run(recipe, tmp_path / "run", log=lambda s: None)
    assert list(metrics["test"]) == ["plain", "adjusted", "tau_norm", "crt"]
    for variant in metrics["test"].values():
        assert 0.0 <= variant["balanced_accuracy"] <= 1.0
        assert set(variant["shots"]) == {"many", "medium", "few"}
    notes = " ".join(metrics["run"]["notes"])
    assert "searched on validation" in notes and "τ-norm" in notes and "cRT" in notes
    report = (tmp_path / "run" / "report.md").read_text(encoding="utf-8")
    for row in ("| plain |", "| adjusted |", "| tau_norm |", "| crt |"):
        assert row in report
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]["crt"]["per_class_accuracy"]
    history = (tmp_path / "run" / "history.csv").read_text().strip().splitlines()
    assert len(history) == 3  # header + 2 epochs: progressive re-sampling kept one iterator
    csv = (tmp_path / "run" / "plots" / "per_class_accuracy.csv").read_text()
    assert "accuracy_adjusted" in csv and "accuracy_crt" in csv
