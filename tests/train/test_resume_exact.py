"""A run interrupted after an epoch and resumed ends with the uninterrupted run's weights and
metrics (issue 13): the data of epoch k are a function of (seed, k), and the checkpoint holds
the optimizer and the random-number state (Dropout's SeedGenerator) besides the weights."""

import json

import keras
import numpy as np
import pytest
from interrupt import assert_close, interrupted_run

from tenfold.train import checkpoints, data
from tenfold.train.recipe import load_recipe
from tenfold.train.run import run

QUIET = ["train.verbose=0", "train.epochs=4", "data.batch_size=128"]


def _interrupted_then_resumed(recipe, out, epochs_done):
    interrupted_run(out, recipe, epochs_done)
    manifest = json.loads((out / "checkpoints" / checkpoints.MANIFEST).read_text())
    lines = []
    metrics = run(recipe, out, log=lines.append)
    assert f"resuming from epoch {epochs_done} of 4" in "\n".join(lines)
    return metrics, manifest


def _weights(out):
    return keras.saving.load_model(out / "model.keras", safe_mode=True).get_weights()


def _history(out):
    rows = (out / "history.csv").read_text().strip().splitlines()
    keys = rows[0].split(",")
    return [{k: float(v) for k, v in zip(keys, r.split(",")) if k not in ("fresh_examples",)} for r in rows[1:]]


@pytest.mark.parametrize("extra", [
    ["data.augment.random_translation=0.1", "model.dropout=0.3", "model.hidden=[32]"],
    ["data.sampler=progressive", "data.echo.factor=1.5", "data.echo.placement=before_augmentation",
     "data.augment.random_translation=0.1", "model.hidden=[16]"],
], ids=["augment+dropout", "progressive+fractional-echo"])
def test_interrupted_after_epoch_2_and_resumed_equals_the_uninterrupted_run(tmp_path, extra):
    recipe = load_recipe("tiny", [*QUIET, *extra])
    reference = run(recipe, tmp_path / "reference", log=lambda s: None)
    resumed, manifest = _interrupted_then_resumed(recipe, tmp_path / "resumed", 2)
    assert resumed["run"]["resumed_from_epoch"] == 2 and resumed["run"]["epochs"] == 4
    if "model.dropout=0.3" in extra:  # the dropout generator's state travelled in the manifest
        rng = manifest["checkpoints"][0]["rng"]
        assert len(rng["layers"]) == 1 and rng["layers"][0][1] > 0
    for a, b in zip(_weights(tmp_path / "reference"), _weights(tmp_path / "resumed"), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    assert resumed["test"]["plain"]["accuracy"] == reference["test"]["plain"]["accuracy"]
    assert_close(resumed["test"], reference["test"])
    ref_rows, rows = _history(tmp_path / "reference"), _history(tmp_path / "resumed")
    for r, s in zip(ref_rows, rows, strict=True):  # epochs 3 and 4 were trained after the resume
        assert s == pytest.approx(r, abs=1e-6)


def test_epoch_k_of_the_training_data_does_not_depend_on_where_the_run_started():
    recipe = load_recipe("tiny", [*QUIET, "data.augment.random_translation=0.2", "data.sampler=square_root",
                                  "data.echo.factor=2", "data.echo.level=batch"])
    d = recipe.data
    run_data = data.build_data(d, seed=recipe.seed)
    steps = data.steps_per_epoch(d, run_data.examples("train"))

    def batches(initial_epoch):
        echo = data.build_echo(d, seed=recipe.seed)
        ds = data.train_dataset(d, run_data, echo, seed=recipe.seed, epochs=4, initial_epoch=initial_epoch)
        return [(x.numpy(), y.numpy()) for x, y in ds]

    whole, tail = batches(0), batches(3)
    assert len(whole) == 4 * steps and len(tail) == steps
    for (x, y), (x2, y2) in zip(whole[3 * steps:], tail, strict=True):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
    # and the epochs differ from each other (shuffled and augmented afresh)
    assert not np.array_equal(whole[0][0], whole[steps][0])
    # the augmentation moved the images but kept them in range
    plain = np.concatenate([x for x, _ in whole[:steps]])
    assert 0 <= plain.min() and plain.max() <= run_data.splits.x_train.max() + 1e-6


@pytest.fixture
def folder(tmp_path):
    """Digits of classes 0-2 as 8x8 PNG files in one sub-folder per class, and a corrupt file."""
    from PIL import Image

    import tenfold

    digits = tenfold.data.load("digits", seed=0)
    x = np.concatenate([digits.x_train, digits.x_val, digits.x_test])
    y = np.concatenate([digits.y_train, digits.y_val, digits.y_test])
    root = tmp_path / "images"
    for c in range(3):
        (root / f"class_{c}").mkdir(parents=True)
        for i, image in enumerate(x[y == c][:30]):
            Image.fromarray((image[..., 0] * 255).astype("uint8"), "L").save(root / f"class_{c}" / f"{i}.png")
    (root / "class_1" / "broken.png").write_bytes(b"not an image at all")
    return root


@pytest.mark.slow
def test_a_streamed_folder_resumes_to_the_uninterrupted_result(folder, tmp_path):
    """Random-resized crops, flips, class-balanced re-sampling and a skipped file, streamed."""
    recipe = load_recipe("tiny", [
        f"data.name={folder}", "data.image_size=12", "data.batch_size=16", "train.verbose=0",
        "train.epochs=4", "data.augment.random_translation=0.1", "data.sampler=class_balanced",
        "data.echo.factor=1.5", "data.echo.placement=before_augmentation", "model.hidden=[16]"])
    reference = run(recipe, tmp_path / "reference", log=lambda s: None)
    resumed, _ = _interrupted_then_resumed(recipe, tmp_path / "resumed", 2)
    for a, b in zip(_weights(tmp_path / "reference"), _weights(tmp_path / "resumed"), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    assert_close(resumed["test"], reference["test"])
