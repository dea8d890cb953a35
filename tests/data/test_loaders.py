import sys
import types

import numpy as np
import pytest
from PIL import Image

from tenfold import data
from tenfold.data import loaders


def test_digits_split_is_stratified_seeded_and_disjoint():
    a = data.load("digits", validation_fraction=0.2, test_fraction=0.2, seed=3)
    b = data.load("digits", validation_fraction=0.2, test_fraction=0.2, seed=3)
    assert a.input_shape == (8, 8, 1) and a.num_classes == 10
    total = len(a.y_train) + len(a.y_val) + len(a.y_test)
    assert total == 1797
    assert abs(len(a.y_test) - 0.2 * 1797) <= 1 and abs(len(a.y_val) - 0.2 * 1797) <= 1
    np.testing.assert_array_equal(a.y_train, b.y_train)
    # stratified: every class's share of the test split within 1 example of its overall share
    overall = np.bincount(np.concatenate([a.y_train, a.y_val, a.y_test]), minlength=10)
    test = np.bincount(a.y_test, minlength=10)
    assert np.all(np.abs(test - overall * len(a.y_test) / total) <= 1.01)
    assert 0.0 <= a.x_train.min() and a.x_train.max() <= 1.0
    # another seed, another split
    c = data.load("digits", seed=4)
    assert not np.array_equal(c.y_train, a.y_train)


def test_digits_resize():
    s = data.load("digits", image_size=16)
    assert s.input_shape == (16, 16, 1)


def test_npz_file(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(60, 5, 5), dtype=np.uint8)
    y = np.repeat(np.arange(3), 20)
    path = tmp_path / "d.npz"
    np.savez(path, x=x, y=y)
    s = data.load(str(path), seed=0)
    assert s.input_shape == (5, 5, 1) and s.num_classes == 3
    assert s.x_train.dtype == np.float32 and s.x_train.max() <= 1.0
    # every image of the splits is one of the originals, scaled by 1/255
    originals = {xi.tobytes() for xi in (x.astype("float32") / 255.0)}
    assert all(xi[..., 0].tobytes() in originals for xi in s.x_test)


def test_npz_missing_arrays_and_bad_labels(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, images=np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"needs arrays 'x' and 'y'; missing \['x', 'y'\]"):
        data.load(str(path))
    np.savez(path, x=np.zeros((4, 2)), y=np.array([0.5, 1, 0, 1]))
    with pytest.raises(ValueError, match="non-negative integer labels"):
        data.load(str(path))


def test_image_folder(tmp_path):
    rng = np.random.default_rng(1)
    for name in ("cat", "dog"):
        (tmp_path / name).mkdir()
        for i in range(12):
            arr = rng.integers(0, 256, size=(6, 7, 3), dtype=np.uint8)
            Image.fromarray(arr).save(tmp_path / name / f"{i}.png")
    s = data.load(str(tmp_path), seed=0)
    assert s.class_names == ["cat", "dog"]
    assert s.input_shape == (6, 7, 3)
    assert len(s.y_train) + len(s.y_val) + len(s.y_test) == 24
    r = data.load(str(tmp_path), image_size=4)
    assert r.input_shape == (4, 4, 3)


def test_image_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="one sub-folder per class"):
        data.load(str(tmp_path))
    (tmp_path / "a").mkdir()
    with pytest.raises(ValueError, match="holds no image"):
        data.load(str(tmp_path))


def test_missing_paths():
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load("/no/such/file.npz")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load("./no/such/folder")


def test_bad_fractions():
    with pytest.raises(ValueError, match="test_fraction must be a number > 0 and < 1, received 1.5"):
        data.load("digits", test_fraction=1.5)
    with pytest.raises(ValueError, match="must be below 1"):
        data.load("digits", test_fraction=0.5, validation_fraction=0.5)


def test_tfds_name_without_tfds_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(ValueError, match="pip install tensorflow-datasets"):
        data.load("cifar10")


def test_tfds_offline_fails_at_once(monkeypatch, tmp_path):
    fake = types.ModuleType("tensorflow_datasets")

    class Builder:
        data_dir = str(tmp_path / "not-prepared")

        class info:  # noqa: N801 - mimics tfds
            splits: dict = {}

        def download_and_prepare(self):  # pragma: no cover - must not be reached
            raise AssertionError("tried to download")

    fake.builder = lambda name: Builder()
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake)
    monkeypatch.setattr(loaders, "_network_available", lambda *a, **k: False)
    with pytest.raises(RuntimeError, match="network is unreachable"):
        data.load("cifar10")


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"name_or_path": 3}, TypeError, r"name_or_path must be 'digits', a .npz path, .* received 3 of type int"),
        ({"image_size": 0}, ValueError, r"image_size must be an integer >= 1, received 0"),
        ({"image_size": (8, 8, 8)}, ValueError, r"image_size must have 2 entries"),
        ({"seed": 1.5}, ValueError, r"seed must be an integer, received 1.5"),
        ({"validation_fraction": float("nan")}, ValueError, r"validation_fraction must be a finite number"),
    ],
)
def test_load_bad_arguments_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        data.load(**{"name_or_path": "digits", **kwargs})
