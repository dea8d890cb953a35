"""Image data sets as file lists: listing, class counts, splits by file, ``splits.json``.

Nothing here decodes an image. A folder is listed once (``os.walk``, sorted, so the same
folder always gives the same list); class counts come from the listing; the long-tail
profile (:func:`tenfold.data.long_tailed`'s rule) and the stratified, seeded split work on
the lists of paths; the split is written to ``splits.json`` and read back, so a resumed run
and its evaluation use the same files. A header check (Pillow's ``open`` + ``verify``: no
pixel decoding) finds unreadable files before training. :mod:`tenfold.data.stream` turns the
lists into ``tf.data`` pipelines.

Layouts (``root`` is the folder given):

* ``root/<class>/**/<image>``: one sub-folder per class; validation and test files are
  drawn from it, stratified by class;
* ``root/train/<class>/...`` with ``root/val/`` (or ``root/validation/``) and/or
  ``root/test/`` in the same shape: those splits are used as they are; a missing one is
  drawn from ``train/``, stratified.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tenfold import _validate as v
from tenfold.data.loaders import IMAGE_SUFFIXES
from tenfold.data.long_tail import long_tailed

SPLIT_FOLDERS = ("train", "val", "validation", "test")
ON_BAD_FILE = ("skip", "fail")
SPLITS_FORMAT = 1
# Pillow's own decompression-bomb limit (about 89 megapixels): above it a file is refused
MAX_PIXELS = 89_478_485


class _ImageClasses:
    """``num_classes`` and ``input_shape`` of a split source with ``class_names``,
    ``image_size`` and ``channels``."""

    class_names: list[str]
    image_size: tuple[int, int]
    channels: int

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(height, width, channels)`` of the images the pipelines produce."""
        return (int(self.image_size[0]), int(self.image_size[1]), int(self.channels))


@dataclass(frozen=True)
class FileSplits(_ImageClasses):
    """Three lists of image files with integer labels, and what made them.

    Paths are relative to ``root`` (so ``splits.json`` survives moving the folder);
    :meth:`paths` gives them joined to it. ``bad_files`` lists the files the header check
    left out, with the reason, as ``[relative path, reason]`` pairs.
    """

    root: str
    class_names: list[str]
    train_files: list[str]
    y_train: list[int]
    val_files: list[str]
    y_val: list[int]
    test_files: list[str]
    y_test: list[int]
    image_size: tuple[int, int] = (64, 64)
    channels: int = 3
    layout: str = "class folders"
    seed: int = 0
    imbalance_factor: float | None = None
    bad_files: list[list[str]] = field(default_factory=list)

    def class_counts(self, split: str = "train") -> list[int]:
        """Files per class of ``split`` (``"train"``, ``"val"``, ``"test"``), from the listing."""
        return class_counts(self.labels(split), self.num_classes)

    def files(self, split: str) -> list[str]:
        v.choice("split", split, ("train", "val", "test"))
        return {"train": self.train_files, "val": self.val_files, "test": self.test_files}[split]

    def labels(self, split: str) -> list[int]:
        v.choice("split", split, ("train", "val", "test"))
        return {"train": self.y_train, "val": self.y_val, "test": self.y_test}[split]

    def paths(self, split: str) -> list[str]:
        """Absolute paths of ``split``'s files."""
        return [os.path.join(self.root, f) for f in self.files(split)]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": SPLITS_FORMAT, "root": self.root, "layout": self.layout, "seed": self.seed,
            "imbalance_factor": self.imbalance_factor, "image_size": list(self.image_size),
            "channels": self.channels, "class_names": self.class_names,
            "class_counts": {s: self.class_counts(s) for s in ("train", "val", "test")},
            "train": [self.train_files, self.y_train], "val": [self.val_files, self.y_val],
            "test": [self.test_files, self.y_test], "bad_files": self.bad_files,
        }


def class_counts(labels: Sequence[int], num_classes: int) -> list[int]:
    """Examples per class as plain ints (classes without an example count 0).

    Example:
    >>> class_counts([0, 2, 2], 4)
    [1, 0, 2, 0]
    """
    num_classes = v.integer("num_classes", num_classes, low=1)
    y = np.asarray(labels, "int64").reshape(-1)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), received labels from {y.min()} to {y.max()}.")
    return [int(c) for c in np.bincount(y, minlength=num_classes)]


def _images_under(folder: Path) -> list[str]:
    """Image files under ``folder`` (sub-folders too), sorted, hidden entries skipped."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [
            os.path.join(dirpath, f) for f in sorted(filenames)
            if not f.startswith(".") and f.lower().endswith(IMAGE_SUFFIXES)
        ]
    return found


def _subfolders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def list_class_folder(
    folder: str | os.PathLike[str], class_names: Sequence[str] | None = None, *, root: str | None = None
) -> tuple[list[str], list[int], list[str]]:
    """Files and labels of a folder with one sub-folder per class.

    Returns ``(files, labels, class_names)``; files are relative to ``root`` (default:
    ``folder``). With ``class_names`` given (the training split's), a sub-folder not among
    them is an error and a missing one counts zero files; without it, every sub-folder is a
    class and one without images is an error.

    Example:
    >>> import tempfile; from PIL import Image
    >>> d = Path(tempfile.mkdtemp())
    >>> for c in ("cat", "dog"):
    ...     (d / c).mkdir(); Image.new("RGB", (4, 4)).save(d / c / "a.png")
    >>> list_class_folder(d)
    (['cat/a.png', 'dog/a.png'], [0, 1], ['cat', 'dog'])
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {str(folder)!r} does not exist or is not a folder.")
    found = _subfolders(folder)
    if class_names is None:
        names = found
        if not names:
            raise ValueError(
                f"{folder}: an image folder needs one sub-folder per class (or train/, val/, "
                f"test/ sub-folders holding them); found none."
            )
    else:
        names = list(class_names)
        extra = [n for n in found if n not in names]
        if extra:
            raise ValueError(f"{folder}: class folders {extra} are not classes of the training split {names}.")
    base = os.fspath(root if root is not None else folder)
    files: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(names):
        here = _images_under(folder / name) if (folder / name).is_dir() else []
        if not here and class_names is None:
            raise ValueError(
                f"{folder / name}: class folder holds no image ({', '.join(IMAGE_SUFFIXES)}); "
                "remove the folder or add images to it."
            )
        files += [os.path.relpath(f, base) for f in here]
        labels += [label] * len(here)
    return files, labels, names


def _split_layout(root: Path) -> dict[str, Path] | None:
    """The split folders of ``root`` when it has the train/val/test layout, else None."""
    found = set(_subfolders(root))
    if "train" not in found or not found <= set(SPLIT_FOLDERS):
        return None
    if {"val", "validation"} <= found:
        raise ValueError(f"{root}: has both val/ and validation/; keep one.")
    return {("val" if name == "validation" else name): root / name for name in found}


def _stratified(
    labels: np.ndarray, share: float, seed: int, where: str, names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(kept, drawn)``, ``drawn`` a stratified ``share`` of ``labels``."""
    from sklearn.model_selection import train_test_split

    counts = np.bincount(labels, minlength=len(names))
    few = [names[c] for c in np.flatnonzero(counts == 1)]
    if few:
        raise ValueError(
            f"class {few[0]!r} of {where} has a single file: a stratified split needs at least 2 "
            "per class. Add files or give the split its own folder (train/, val/, test/)."
        )
    idx = np.arange(len(labels))
    kept, drawn = train_test_split(idx, test_size=share, stratify=labels, random_state=seed)
    return np.sort(kept), np.sort(drawn)


def split_files(
    files: Sequence[str],
    labels: Sequence[int],
    *,
    validation_fraction: float = 0.15,
    test_fraction: float = 0.25,
    seed: int = 0,
    class_names: Sequence[str] | None = None,
) -> tuple[tuple[list[str], list[int]], tuple[list[str], list[int]], tuple[list[str], list[int]]]:
    """Stratified, seeded ``(train, val, test)`` split of a file list, each ``(files, labels)``.

    A fraction of ``0`` leaves that split empty. The rule is that of
    :func:`tenfold.data.split` (scikit-learn's ``train_test_split``, test first).

    Example:
    >>> files = [f"{i}.png" for i in range(8)]
    >>> tr, va, te = split_files(files, [0, 1] * 4, validation_fraction=0.25, test_fraction=0.25)
    >>> len(tr[0]), len(va[0]), len(te[0]), sorted(te[1])
    (4, 2, 2, [0, 1])
    """
    validation_fraction = v.fraction("validation_fraction", validation_fraction, open_high=True)
    test_fraction = v.fraction("test_fraction", test_fraction, open_high=True)
    seed = v.integer("seed", seed)
    if validation_fraction + test_fraction >= 1.0:
        raise ValueError(
            "validation_fraction + test_fraction must be below 1, received "
            f"{validation_fraction} + {test_fraction}."
        )
    files_a = np.asarray(list(files), dtype=object)
    y = np.asarray(list(labels), "int64")
    if len(files_a) != len(y):
        raise ValueError(f"files and labels differ in length: {len(files_a)} vs {len(y)}.")
    names = list(class_names) if class_names is not None else [str(c) for c in range(int(y.max()) + 1)]
    rest = np.arange(len(y))
    test = np.array([], "int64")
    if test_fraction > 0:
        kept, test = _stratified(y, test_fraction, seed, "the listing", names)
        rest = kept
    val = np.array([], "int64")
    if validation_fraction > 0:
        kept, drawn = _stratified(y[rest], validation_fraction / (1.0 - test_fraction), seed, "the listing", names)
        rest, val = rest[kept], rest[drawn]

    def part(idx: np.ndarray) -> tuple[list[str], list[int]]:
        return [str(f) for f in files_a[idx]], [int(c) for c in y[idx]]

    return part(rest), part(val), part(test)


def check_image_file(path: str | os.PathLike[str], *, max_pixels: int = MAX_PIXELS) -> str | None:
    """Why ``path`` cannot be used as an image, or None when its header is sound.

    Reads the header with Pillow (``Image.open`` + ``verify``, no pixel decoding: a file cut
    short after a sound header passes here and is skipped by the pipeline instead). A
    file of more than ``max_pixels`` pixels is refused: decoding it would take
    ``height·width·channels`` bytes per parallel reader.
    """
    from PIL import Image

    try:
        with Image.open(path) as img:
            width, height = img.size
            if width * height > max_pixels:
                return f"{width}x{height} pixels is above max_pixels={max_pixels}"
            img.verify()
    except Exception as err:  # noqa: BLE001 - any failure to read a header means a bad file
        return f"{type(err).__name__}: {err}"
    return None


def scan_files(
    paths: Sequence[str], *, on_bad_file: str = "skip", max_pixels: int = MAX_PIXELS
) -> list[list[str]]:
    """Header check of every path: ``[[path, reason], ...]`` of the bad ones.

    With ``on_bad_file="fail"`` the first bad file raises a ValueError naming it instead.
    """
    v.choice("on_bad_file", on_bad_file, ON_BAD_FILE)
    max_pixels = v.integer("max_pixels", max_pixels, low=1)
    bad = []
    for path in paths:
        reason = check_image_file(path, max_pixels=max_pixels)
        if reason is None:
            continue
        if on_bad_file == "fail":
            raise ValueError(
                f"image file {path!r} cannot be used ({reason}). Remove or replace it, or pass "
                "on_bad_file='skip' (recipe: data.on_bad_file: skip) to leave bad files out and count them."
            )
        bad.append([os.fspath(path), reason])
    return bad


def _listing(root: Path, validation_fraction: float, test_fraction: float, seed: int) -> dict[str, Any]:
    """Files and labels of every split of ``root`` (either layout), before any filtering."""
    folders = _split_layout(root)
    if folders is None:
        files, labels, names = list_class_folder(root)
        train, val, test = split_files(
            files, labels, validation_fraction=validation_fraction, test_fraction=test_fraction,
            seed=seed, class_names=names,
        )
        return {"layout": "class folders", "names": names, "train": train, "val": val, "test": test}
    files, labels, names = list_class_folder(folders["train"], root=os.fspath(root))
    out: dict[str, Any] = {"layout": "split folders", "names": names}
    for split in ("val", "test"):
        if split in folders:
            f, y, _ = list_class_folder(folders[split], names, root=os.fspath(root))
            out[split] = (f, y)
    train, val, test = split_files(
        files, labels, seed=seed, class_names=names,
        validation_fraction=0.0 if "val" in out else validation_fraction,
        test_fraction=0.0 if "test" in out else test_fraction,
    )
    out["train"] = train
    out.setdefault("val", val)
    out.setdefault("test", test)
    return out


def _drop_bad(part: tuple[list[str], list[int]], bad: set[str]) -> tuple[list[str], list[int]]:
    keep = [i for i, f in enumerate(part[0]) if f not in bad]
    return [part[0][i] for i in keep], [part[1][i] for i in keep]


def folder_splits(
    root: str | os.PathLike[str],
    *,
    image_size: int | Sequence[int] = 64,
    channels: int = 3,
    validation_fraction: float = 0.15,
    test_fraction: float = 0.25,
    seed: int = 0,
    imbalance_factor: float | None = None,
    on_bad_file: str = "skip",
    check_files: bool = True,
) -> FileSplits:
    """List an image folder into stratified train / validation / test file lists.

    Args:
        root: the image folder (either layout of this module's docstring).
        image_size: int or (height, width) the pipelines resize to (recorded, not used here).
        channels: 1 or 3. Channels the pipelines decode every image to (a grey file
            becomes three equal channels with 3; an alpha channel is dropped).
        validation_fraction, test_fraction: shares of all files drawn for validation and
            test when the folder has no such split of its own.
        seed: seed of the split and of the long-tail subset.
        imbalance_factor: optional float >= 1. Cut the training files to the exponential
            long-tail profile of :func:`tenfold.data.long_tailed` (validation and test stay
            as listed).
        on_bad_file: ``"skip"`` (leave out files whose header is unreadable, listed in
            ``bad_files``) or ``"fail"`` (a ValueError naming the first one).
        check_files: bool. Run the header check (one ``open`` per file) at all.
    """
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a folder path, received {root!r} of type {type(root).__name__}.")
    size = v.int_or_ints("image_size", image_size, low=1, length=2)
    size = (size, size) if isinstance(size, int) else tuple(size)
    channels = v.choice("channels", v.integer("channels", channels), (1, 3))
    seed = v.integer("seed", seed)
    imbalance_factor = v.number("imbalance_factor", imbalance_factor, low=1, allow_none=True)
    v.choice("on_bad_file", on_bad_file, ON_BAD_FILE)
    check_files = v.boolean("check_files", check_files)
    base = Path(os.path.abspath(root))
    parts = _listing(base, validation_fraction, test_fraction, seed)
    bad: list[list[str]] = []
    if check_files:
        every = [f for s in ("train", "val", "test") for f in parts[s][0]]
        bad = scan_files([os.path.join(base, f) for f in every], on_bad_file=on_bad_file)
        bad = [[os.path.relpath(p, base), reason] for p, reason in bad]
        gone = {p for p, _ in bad}
        for s in ("train", "val", "test"):
            parts[s] = _drop_bad(parts[s], gone)
    train = parts["train"]
    empty = [parts["names"][c] for c, n in enumerate(class_counts(train[1], len(parts["names"]))) if n == 0]
    if empty:
        raise ValueError(f"{base}: class {empty[0]!r} has no readable training image left.")
    if imbalance_factor is not None:
        kept, y_kept, _ = long_tailed(np.asarray(train[0], dtype=object), np.asarray(train[1]), imbalance_factor, seed=seed)
        train = ([str(f) for f in kept], [int(c) for c in y_kept])
    return FileSplits(
        os.fspath(base), list(parts["names"]), train[0], train[1], parts["val"][0], parts["val"][1],
        parts["test"][0], parts["test"][1], size, channels, parts["layout"], seed, imbalance_factor, bad,
    )


def write_splits(splits: FileSplits, path: str | os.PathLike[str]) -> Path:
    """Write ``splits`` as JSON to ``path`` atomically (temporary file, fsync, rename)."""
    v.instance("splits", splits, FileSplits, "a FileSplits")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(splits.to_json(), f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def read_splits(path: str | os.PathLike[str]) -> FileSplits:
    """The :class:`FileSplits` written by :func:`write_splits`."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable splits.json ({err}).") from err
    if not isinstance(record, dict) or record.get("format") != SPLITS_FORMAT:
        raise ValueError(f"{path}: not a splits.json of format {SPLITS_FORMAT}.")
    return FileSplits(
        record["root"], list(record["class_names"]),
        list(record["train"][0]), [int(c) for c in record["train"][1]],
        list(record["val"][0]), [int(c) for c in record["val"][1]],
        list(record["test"][0]), [int(c) for c in record["test"][1]],
        tuple(int(s) for s in record["image_size"]), int(record["channels"]), record["layout"],
        int(record["seed"]), record["imbalance_factor"], [list(b) for b in record["bad_files"]],
    )


def stream_splits(
    source: str | os.PathLike[str],
    *,
    image_size: int | Sequence[int] = 64,
    validation_fraction: float = 0.15,
    test_fraction: float = 0.25,
    seed: int = 0,
    imbalance_factor: float | None = None,
    channels: int = 3,
    on_bad_file: str = "skip",
    splits_file: str | os.PathLike[str] | None = None,
) -> FileSplits:
    """The trainer's entry point: the file splits of an image folder, made once per run.

    With ``splits_file`` (the run directory's ``splits.json``) an existing file is read back
    (a resumed run and its evaluation use the same files) after checking it was made from
    the same folder and settings; otherwise the splits are made by :func:`folder_splits`
    and written there. A TFDS name is read by :func:`tfds_splits`.

    Example:
    >>> import tempfile; from PIL import Image
    >>> d = Path(tempfile.mkdtemp())
    >>> for c in ("a", "b"):
    ...     (d / c).mkdir()
    ...     for i in range(4): Image.new("RGB", (4, 4)).save(d / c / f"{i}.png")
    >>> s = stream_splits(d, image_size=8, validation_fraction=0.25, test_fraction=0.25)
    >>> s.class_counts("train"), s.input_shape
    ([2, 2], (8, 8, 3))
    """
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            f"source must be an image folder or a TFDS name, received {source!r} of type {type(source).__name__}."
        )
    source = v.string("source", os.fspath(source))
    settings = dict(
        image_size=image_size, validation_fraction=validation_fraction, test_fraction=test_fraction,
        seed=seed, imbalance_factor=imbalance_factor, channels=channels, on_bad_file=on_bad_file,
    )
    if splits_file is not None and Path(splits_file).is_file():
        return _resumed(read_splits(splits_file), source, settings, splits_file)
    if not os.path.isdir(source):
        if os.sep in source or source.startswith("."):
            raise FileNotFoundError(f"data path {source!r} does not exist.")
        return tfds_splits(source, **settings)  # type: ignore[arg-type]
    splits = folder_splits(source, **settings)  # type: ignore[arg-type]
    if splits_file is not None:
        write_splits(splits, splits_file)
    return splits


def _resumed(splits: FileSplits, source: str, settings: dict[str, Any], where: Any) -> FileSplits:
    """``splits`` read back, after checking it belongs to ``source`` and ``settings``."""
    size = settings["image_size"]
    size = (size, size) if isinstance(size, int) else tuple(size)
    want = {"root": os.path.abspath(source) if os.path.isdir(source) else source, "seed": settings["seed"],
            "imbalance_factor": settings["imbalance_factor"], "image_size": tuple(size),
            "channels": settings["channels"]}
    have = {"root": splits.root, "seed": splits.seed, "imbalance_factor": splits.imbalance_factor,
            "image_size": tuple(splits.image_size), "channels": splits.channels}
    differ = [k for k in want if want[k] != have[k]]
    if differ:
        raise ValueError(
            f"{where} was written for {', '.join(f'{k}={have[k]!r}' for k in differ)} but this run asks "
            f"for {', '.join(f'{k}={want[k]!r}' for k in differ)}; use a new run directory."
        )
    return splits


@dataclass(frozen=True)
class TfdsSplits(_ImageClasses):
    """A prepared TFDS data set: its splits (TFDS split strings) and class counts.

    Splits the data set does not have are cut from ``train`` with TFDS' slicing
    (``train[:85%]``): by position, not stratified. Class counts are read from the
    labels alone (``tfds.decode.SkipDecoding`` on the image: no image is decoded).
    """

    name: str
    data_dir: str | None
    splits: dict[str, str]
    class_names: list[str]
    counts: dict[str, list[int]]
    image_size: tuple[int, int]
    channels: int

    def class_counts(self, split: str = "train") -> list[int]:
        return list(self.counts[v.choice("split", split, ("train", "val", "test"))])


def _tfds(feature: str) -> Any:
    """``tensorflow_datasets``, or an ImportError naming the extra that installs it."""
    import importlib

    try:
        return importlib.import_module("tensorflow_datasets")
    except ImportError as err:
        raise ImportError(
            f"{feature} needs TensorFlow Datasets. Install it with `pip install tenfold[tfds]` "
            "(tensorflow-datasets), or give an image folder instead of a TFDS name."
        ) from err


def _tfds_parts(name: str, found: Sequence[str], validation_fraction: float, test_fraction: float) -> dict[str, str]:
    if "train" not in found:
        raise ValueError(f"TFDS data set {name!r} has no 'train' split (it has {sorted(found)}).")
    val = next((s for s in ("validation", "val") if s in found), None)
    test = "test" if "test" in found else None
    cut_test = 0 if test else round(100 * test_fraction)
    cut_val = 0 if val else round(100 * validation_fraction)
    keep = 100 - cut_test - cut_val
    parts = {"train": "train" if keep == 100 else f"train[:{keep}%]"}
    parts["val"] = val or f"train[{keep}%:{keep + cut_val}%]"
    parts["test"] = test or f"train[{100 - cut_test}%:]"
    return parts


def tfds_splits(
    name: str,
    *,
    image_size: int | Sequence[int] = 64,
    validation_fraction: float = 0.15,
    test_fraction: float = 0.25,
    seed: int = 0,
    imbalance_factor: float | None = None,
    channels: int = 3,
    on_bad_file: str = "skip",
    data_dir: str | None = None,
) -> TfdsSplits:
    """A TFDS data set prepared on this machine, as :class:`TfdsSplits` (never a download).

    Prepare it where there is a network (``tfds build NAME`` or
    ``tfds.builder(NAME).download_and_prepare()``) and copy the data directory
    (``~/tensorflow_datasets/NAME``) here, or pass ``data_dir``. ``imbalance_factor`` is
    not supported on TFDS sources (cut the folder instead: see docs/your-data.md).
    """
    tfds = _tfds(f"the TFDS data set {name!r}")
    size = v.int_or_ints("image_size", image_size, low=1, length=2)
    size = (size, size) if isinstance(size, int) else tuple(size)
    channels = v.choice("channels", v.integer("channels", channels), (1, 3))
    v.choice("on_bad_file", on_bad_file, ON_BAD_FILE)
    v.integer("seed", seed)
    if imbalance_factor is not None:
        raise ValueError(
            f"imbalance_factor={imbalance_factor!r} is not supported on a TFDS source ({name!r}); "
            "export it to an image folder to cut a long-tailed profile."
        )
    builder = tfds.builder(name, data_dir=data_dir)
    if not builder.is_prepared():
        raise FileNotFoundError(
            f"TFDS data set {name!r} is not prepared under {builder.data_dir}. Prepare it on a "
            f"machine with internet (`tfds build {name}`) and copy the folder here; tenfold never "
            "downloads data during a run."
        )
    parts = _tfds_parts(name, list(builder.info.splits), validation_fraction, test_fraction)
    names = list(builder.info.features["label"].names)
    counts = {}
    for split, spec in parts.items():
        ds = builder.as_dataset(split=spec, decoders={"image": tfds.decode.SkipDecoding()})
        found = [0] * len(names)
        for labels in ds.map(lambda e: e["label"]).batch(65536).as_numpy_iterator():
            for c, n in zip(*np.unique(labels, return_counts=True)):
                found[int(c)] += int(n)
        counts[split] = found
    return TfdsSplits(name, data_dir, parts, names, counts, size, channels)
