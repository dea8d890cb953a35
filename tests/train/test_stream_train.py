"""`tenfold train` on an image folder: the streaming path (issue 18 item 1)."""

import json

import numpy as np
import pytest
from PIL import Image

import tenfold
from tenfold.train.build import build
from tenfold.train.data import build_data
from tenfold.train.recipe import RecipeError, load_recipe
from tenfold.train.run import run

PER_CLASS = 24


@pytest.fixture
def folder(tmp_path):
    """Digits of classes 0-2 as 8x8 PNG files, one sub-folder per class, and a corrupt file."""
    digits = tenfold.data.load("digits", seed=0)
    x = np.concatenate([digits.x_train, digits.x_val, digits.x_test])
    y = np.concatenate([digits.y_train, digits.y_val, digits.y_test])
    root = tmp_path / "images"
    for c in range(3):
        (root / f"class_{c}").mkdir(parents=True)
        for i, image in enumerate(x[y == c][:PER_CLASS]):
            Image.fromarray((image[..., 0] * 255).astype("uint8"), "L").save(root / f"class_{c}" / f"{i}.png")
    (root / "class_1" / "broken.png").write_bytes(b"not an image at all")
    return root


def _recipe(root, *extra):
    return load_recipe("tiny", [f"data.name={root}", "data.image_size=16", "data.batch_size=16",
                                "model.name=small_resnet", "model.width=4", "model.blocks=[1]",
                                "train.epochs=1", "train.verbose=0", *extra])


def test_a_folder_trains_streamed_with_splits_json_and_bad_files_reported(folder, tmp_path):
    recipe = _recipe(folder)
    out = tmp_path / "run"
    metrics = run(recipe, out, force=True, log=lambda s: None)
    info = metrics["run"]
    assert info["input_shape"] == [16, 16, 3] and info["num_classes"] == 3
    assert info["bad_files_skipped"][0][0] == "class_1/broken.png"
    total = info["train_examples"] + info["validation_examples"] + info["test_examples"]
    assert total == 3 * PER_CLASS  # every readable file in exactly one split, the broken one in none
    assert metrics["test"]["plain"]["examples"] == info["test_examples"]
    saved = tenfold.data.read_splits(out / "splits.json")
    assert len(saved.test_files) == info["test_examples"]
    assert sorted(saved.class_counts("train")) == sorted(info["class_counts"])
    report = (out / "report.md").read_text()
    assert "1 bad file(s) skipped" in report and "class_1/broken.png" in report
    assert "streamed from the image folder" in report
    facts = json.loads((out / "deploy" / "deploy.json").read_text())
    assert facts["max_relative_difference"] <= 1e-5 and facts["predictions_changed"] == 0


def test_on_bad_file_fail_stops_before_training_naming_the_file(folder, tmp_path):
    with pytest.raises(RecipeError, match=r"broken\.png"):
        run(_recipe(folder, "data.on_bad_file=fail"), tmp_path / "run", force=True, log=lambda s: None)
    assert not (tmp_path / "run").exists()


def test_a_resumed_build_reads_the_run_directory_splits(folder, tmp_path):
    recipe = _recipe(folder)
    first = build_data(recipe.data, seed=0)
    out = tmp_path / "run"
    out.mkdir()
    record = first.files.to_json()
    record["test"] = [record["test"][0][:-1], record["test"][1][:-1]]  # as another listing might give
    (out / "splits.json").write_text(json.dumps(record))
    built = build(recipe, out, log=lambda s: None, resume=True)
    assert built.data.files.test_files == first.files.test_files[:-1]
    fresh = build(recipe, tmp_path / "other", log=lambda s: None)
    assert fresh.data.files.test_files == first.files.test_files


def test_in_memory_only_keys_are_refused_for_a_folder(folder):
    with pytest.raises(RecipeError, match=r"data\.sampler: 'progressive'"):
        build_data(_recipe(folder, "data.sampler=progressive").data, seed=0)
    with pytest.raises(RecipeError, match=r"data\.on_bad_file: applies to an image folder"):
        build_data(load_recipe("tiny", ["data.on_bad_file=fail"]).data, seed=0)
