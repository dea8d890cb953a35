"""File lists of image folders: listing, class counts, splits by file, long tail, splits.json."""

import builtins
import json

import numpy as np
import pytest
from PIL import Image

from tenfold.data import files as F
from tenfold.data.long_tail import long_tail_counts

COUNTS = {"ant": 12, "bee": 8, "cat": 6}


def _image(path, rng, mode="RGB", size=(20, 16)):
    shape = (size[1], size[0]) + ((3,) if mode == "RGB" else (4,) if mode == "RGBA" else ())
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)


def make_folder(root, counts=COUNTS, seed=0, corrupt=False):
    """Class folders with JPEG/PNG files of mixed sizes and modes (and one corrupt file)."""
    rng = np.random.default_rng(seed)
    for name, n in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            mode = ("RGB", "L", "RGBA")[i % 3]
            suffix = ".jpg" if mode != "RGBA" else ".png"
            _image(root / name / f"{i:03d}{suffix}", rng, mode, size=(16 + i, 12 + 2 * i))
    if corrupt:
        (root / "bee" / "broken.jpg").write_bytes(b"\xff\xd8 this is not a JPEG")
    (root / sorted(counts)[0] / "notes.txt").write_text("not an image")
    return root


def test_listing_counts_equal_counts_from_decoding(tmp_path):
    root = make_folder(tmp_path / "d")
    files, labels, names = F.list_class_folder(root)
    assert names == sorted(COUNTS)
    assert F.class_counts(labels, len(names)) == [COUNTS[n] for n in names]
    # independently: decode every file under the folder with Pillow and count per class
    decoded = dict.fromkeys(names, 0)
    for path in sorted(root.rglob("*")):
        try:
            with Image.open(path) as img:
                img.load()
        except (OSError, ValueError):
            continue
        decoded[path.parent.name] += 1
    assert F.class_counts(labels, 3) == [decoded[n] for n in names]
    assert all(f.split("/")[0] == names[c] for f, c in zip(files, labels))


def test_listing_never_opens_an_image(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "d")
    opened = []
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: opened.append(f) or real_open(f, *a, **k))
    monkeypatch.setattr(Image, "open", lambda f, *a, **k: opened.append(f))
    files, _, _ = F.list_class_folder(root)
    assert opened == [] and len(files) == sum(COUNTS.values())


def test_empty_class_folder_is_named(tmp_path):
    root = make_folder(tmp_path / "d")
    (root / "dog").mkdir()
    with pytest.raises(ValueError, match=r"dog: class folder holds no image"):
        F.folder_splits(root)
    with pytest.raises(ValueError, match="needs one sub-folder per class"):
        F.list_class_folder(root / "ant")


def test_corrupt_file_skipped_and_listed_or_named(tmp_path):
    root = make_folder(tmp_path / "d", corrupt=True)
    s = F.folder_splits(root, seed=0, validation_fraction=0.2, test_fraction=0.2)
    assert [b[0] for b in s.bad_files] == ["bee/broken.jpg"]
    assert "UnidentifiedImageError" in s.bad_files[0][1]
    every = s.train_files + s.val_files + s.test_files
    assert "bee/broken.jpg" not in every and len(every) == sum(COUNTS.values())
    with pytest.raises(ValueError, match=r"broken\.jpg.*on_bad_file='skip'"):
        F.folder_splits(root, on_bad_file="fail")


def test_header_check_refuses_huge_and_truncated_headers(tmp_path):
    rng = np.random.default_rng(0)
    _image(tmp_path / "big.png", rng, size=(50, 40))
    assert "above max_pixels=1000" in F.check_image_file(tmp_path / "big.png", max_pixels=1000)
    assert F.check_image_file(tmp_path / "big.png") is None
    (tmp_path / "cut.png").write_bytes((tmp_path / "big.png").read_bytes()[:40])
    assert F.check_image_file(tmp_path / "cut.png") is not None


def test_split_is_stratified_seeded_disjoint_and_complete(tmp_path):
    root = make_folder(tmp_path / "d", counts={"a": 40, "b": 20, "c": 12})
    a = F.folder_splits(root, validation_fraction=0.25, test_fraction=0.25, seed=3)
    b = F.folder_splits(root, validation_fraction=0.25, test_fraction=0.25, seed=3)
    c = F.folder_splits(root, validation_fraction=0.25, test_fraction=0.25, seed=4)
    assert a == b and a.test_files != c.test_files
    every = a.train_files + a.val_files + a.test_files
    assert len(set(every)) == len(every) == 72
    for split in ("val", "test"):
        assert np.all(np.abs(np.array(a.class_counts(split)) - 0.25 * np.array([40, 20, 12])) <= 1)
    assert a.layout == "class folders" and a.input_shape == (64, 64, 3)


def test_train_val_test_layout(tmp_path):
    root = tmp_path / "d"
    make_folder(root / "train", counts={"a": 10, "b": 6})
    make_folder(root / "validation", counts={"a": 3, "b": 2}, seed=1)
    make_folder(root / "test", counts={"a": 4}, seed=2)  # a class may be missing from test
    s = F.folder_splits(root, seed=0)
    assert s.layout == "split folders" and s.class_names == ["a", "b"]
    assert s.class_counts("train") == [10, 6] and s.class_counts("val") == [3, 2]
    assert s.class_counts("test") == [4, 0]
    assert all(f.startswith("train/") for f in s.train_files)
    assert all(f.startswith("validation/") for f in s.val_files)
    # without val/, validation files are drawn from train/, stratified
    import shutil

    shutil.rmtree(root / "validation")
    s = F.folder_splits(root, validation_fraction=0.25, seed=0)
    assert sum(s.class_counts("val")) == 4 and min(s.class_counts("val")) >= 1
    assert sum(s.class_counts("train")) + sum(s.class_counts("val")) == 16
    assert all(f.startswith("train/") for f in s.val_files)


def test_split_layout_errors(tmp_path):
    root = tmp_path / "d"
    make_folder(root / "train", counts={"a": 4, "b": 4})
    make_folder(root / "val", counts={"a": 2, "zebra": 2}, seed=1)
    with pytest.raises(ValueError, match=r"class folders \['zebra'\] are not classes"):
        F.folder_splits(root)
    make_folder(root / "validation", counts={"a": 2}, seed=2)
    with pytest.raises(ValueError, match="both val/ and validation/"):
        F.folder_splits(root)


def test_single_file_class_cannot_be_stratified(tmp_path):
    root = make_folder(tmp_path / "d", counts={"a": 5, "b": 1})
    with pytest.raises(ValueError, match="class 'b' of the listing has a single file"):
        F.folder_splits(root)


def test_long_tail_subset_of_a_folder(tmp_path):
    root = make_folder(tmp_path / "d", counts={"a": 30, "b": 30, "c": 30})
    full = F.folder_splits(root, validation_fraction=0.2, test_fraction=0.2, seed=1)
    lt = F.folder_splits(root, validation_fraction=0.2, test_fraction=0.2, seed=1, imbalance_factor=10)
    n_max = min(full.class_counts("train"))
    assert lt.class_counts("train") == long_tail_counts(n_max, 3, 10) == [18, 5, 1]
    assert set(lt.train_files) <= set(full.train_files)
    assert lt.val_files == full.val_files and lt.test_files == full.test_files
    assert all(full.y_train[full.train_files.index(f)] == y for f, y in zip(lt.train_files, lt.y_train))


def test_splits_json_round_trip_and_resume_reads_the_same_files(tmp_path):
    root = make_folder(tmp_path / "d", corrupt=True)
    run = tmp_path / "run" / "splits.json"
    first = F.stream_splits(root, image_size=(32, 24), seed=5, imbalance_factor=2, splits_file=run)
    assert run.is_file() and F.read_splits(run) == first
    record = json.loads(run.read_text())
    assert record["class_counts"]["train"] == first.class_counts("train")
    # the folder changes; a resumed run still trains and evaluates on the files it started with
    _image(root / "ant" / "late.jpg", np.random.default_rng(9))
    resumed = F.stream_splits(root, image_size=(32, 24), seed=5, imbalance_factor=2, splits_file=run)
    assert resumed == first
    fresh = F.stream_splits(root, image_size=(32, 24), seed=5)
    assert "ant/late.jpg" in fresh.train_files + fresh.val_files + fresh.test_files
    assert "ant/late.jpg" not in resumed.train_files + resumed.val_files + resumed.test_files
    with pytest.raises(ValueError, match=r"written for seed=5.*asks for seed=6"):
        F.stream_splits(root, image_size=(32, 24), seed=6, imbalance_factor=2, splits_file=run)
    run.write_text("{}")
    with pytest.raises(ValueError, match="not a splits.json"):
        F.read_splits(run)


def test_named_errors(tmp_path):
    root = make_folder(tmp_path / "d")
    with pytest.raises(ValueError, match="on_bad_file must be one of 'skip', 'fail', received 'skp'. Did you mean 'skip'"):
        F.folder_splits(root, on_bad_file="skp")
    with pytest.raises(ValueError, match="channels must be one of 1, 3, received 4"):
        F.folder_splits(root, channels=4)
    with pytest.raises(ValueError, match="validation_fraction \\+ test_fraction must be below 1"):
        F.folder_splits(root, validation_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ValueError, match="imbalance_factor must be a number >= 1, received 0.5"):
        F.folder_splits(root, imbalance_factor=0.5)
    with pytest.raises(TypeError, match="source must be an image folder or a TFDS name"):
        F.stream_splits(3)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        F.stream_splits(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        F.class_counts([0, 2], 2)


def test_tfds_name_without_tfds_names_the_extra(monkeypatch):
    import importlib

    real = importlib.import_module

    def no_tfds(name, *args, **kwargs):
        if name == "tensorflow_datasets":
            raise ImportError("No module named 'tensorflow_datasets'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", no_tfds)
    with pytest.raises(ImportError, match=r"pip install tenfold\[tfds\]"):
        F.stream_splits("imagenette")
