"""Loading data sets into stratified train / validation / test splits.

Sources: ``"digits"`` (scikit-learn's bundled 8×8 handwritten digits: real data, no
download), a folder of images with one sub-folder per class, a ``.npz`` file with ``x`` and
``y`` arrays, or a TensorFlow Datasets name (needs ``tensorflow-datasets`` and, for a data
set not yet prepared locally, the network: without it the load fails at once).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tenfold import _validate as v

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


@dataclass
class Splits:
    """Arrays of one data set, split three ways. Images are float32 NHWC in [0, 1]."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str] = field(default_factory=list)
    source: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    def class_counts(self) -> list[int]:
        """Training examples per class, as plain ints."""
        return [int(c) for c in np.bincount(self.y_train, minlength=self.num_classes)]


def split(
    x: np.ndarray,
    y: np.ndarray,
    *,
    validation_fraction: float = 0.15,
    test_fraction: float = 0.25,
    seed: int = 0,
    class_names: list[str] | None = None,
    source: str = "",
) -> Splits:
    """Stratified train / validation / test split of arrays ``x``, ``y``.

    Example:
    >>> x, y = np.zeros((40, 2)), np.arange(40) % 2
    >>> s = split(x, y, validation_fraction=0.25, test_fraction=0.25)
    >>> len(s.y_train), len(s.y_val), len(s.y_test)
    (20, 10, 10)
    """
    from sklearn.model_selection import train_test_split

    validation_fraction = v.fraction("validation_fraction", validation_fraction, open_low=True, open_high=True)
    test_fraction = v.fraction("test_fraction", test_fraction, open_low=True, open_high=True)
    seed = v.integer("seed", seed, low=0)
    if validation_fraction + test_fraction >= 1.0:
        raise ValueError(
            "validation_fraction + test_fraction must be below 1, received "
            f"{validation_fraction} + {test_fraction}."
        )
    y = np.asarray(y).astype("int64")
    if len(x) != len(y):
        raise ValueError(f"x and y differ in length: {len(x)} vs {len(y)}.")
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=test_fraction, stratify=y, random_state=seed
    )
    val_share = validation_fraction / (1.0 - test_fraction)
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=val_share, stratify=y_rest, random_state=seed
    )
    num_classes = int(y.max()) + 1
    names = class_names or [str(i) for i in range(num_classes)]
    return Splits(x_train, y_train, x_val, y_val, x_test, y_test, names, source)


def _as_images(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    scale = 255.0 if x.dtype == np.uint8 else 1.0
    x = x.astype("float32") / scale
    if x.ndim == 3:
        x = x[..., None]
    return x


def _image_size(image_size: Any) -> tuple[int, int]:
    """``image_size`` (an int or a (height, width) pair, each >= 1) as a pair."""
    size = v.int_or_ints("image_size", image_size, low=1, length=2)
    return (size, size) if isinstance(size, int) else size


def _resize(x: np.ndarray, image_size: int | tuple[int, int] | None) -> np.ndarray:
    if image_size is None or x.ndim != 4:
        return x
    size = _image_size(image_size)
    import keras

    out = keras.ops.image.resize(x, size, interpolation="bilinear")
    return np.asarray(keras.ops.convert_to_numpy(out), dtype="float32")


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """scikit-learn's digits: 1797 8×8 grey images scaled to [0, 1], labels 0–9."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype("float32")[..., None]
    return x, bunch.target.astype("int64"), [str(n) for n in bunch.target_names]


def load_npz(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Arrays ``x`` (N, H, W[, C]) or (N, D) and integer ``y`` from a ``.npz`` file."""
    with np.load(path, allow_pickle=False) as data:
        missing = [k for k in ("x", "y") if k not in data.files]
        if missing:
            raise ValueError(
                f"{path}: a .npz data file needs arrays 'x' and 'y'; missing {missing}, "
                f"found {sorted(data.files)}."
            )
        x, y = data["x"], data["y"]
        names = [str(n) for n in data["class_names"]] if "class_names" in data.files else None
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or (y.size and y.min() < 0):
        raise ValueError(f"{path}: 'y' must be a 1-D array of non-negative integer labels.")
    x = _as_images(x) if x.ndim >= 3 else np.asarray(x, dtype="float32")
    return x, y.astype("int64"), names or [str(i) for i in range(int(y.max()) + 1)]


def load_image_folder(
    path: str | os.PathLike[str], image_size: int | tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images under ``path/<class name>/*.png|jpg|...``; classes in sorted order."""
    from PIL import Image

    root = Path(path)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"{root}: an image folder needs one sub-folder per class; found none.")
    size = None if image_size is None else _image_size(image_size)
    images, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(f for f in (root / name).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"{root / name}: class folder holds no image ({', '.join(IMAGE_SUFFIXES)}).")
        for file in files:
            with Image.open(file) as img:
                img = img.convert("L" if img.mode in ("L", "1", "P", "I") else "RGB")
                if size is not None:
                    img = img.resize((int(size[1]), int(size[0])), Image.BILINEAR)
                arr = np.asarray(img)
            if images and arr.shape != images[0].shape:
                raise ValueError(
                    f"{file}: image of shape {arr.shape} differs from {images[0].shape}; "
                    "pass image_size to resize all images to one size."
                )
            images.append(arr)
            labels.append(label)
    return _as_images(np.stack(images).astype("uint8")), np.asarray(labels, "int64"), classes


def _network_available(host: str = "storage.googleapis.com", timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def load_tfds(name: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A TensorFlow Datasets image classification set, all splits concatenated."""
    try:
        import tensorflow_datasets as tfds  # type: ignore[import-not-found]
    except ImportError as err:
        raise ValueError(
            f"data {name!r} is not 'digits', a .npz file or an image folder, and "
            "tensorflow-datasets is not installed (`pip install tensorflow-datasets`) to "
            "look it up as a TFDS name."
        ) from err
    builder = tfds.builder(name)
    prepared = os.path.isdir(builder.data_dir) and bool(builder.info.splits)
    if not prepared and not _network_available():
        raise RuntimeError(
            f"TFDS data set {name!r} is not prepared under {builder.data_dir} and the "
            "network is unreachable, so it cannot be downloaded. Prepare it on a machine "
            "with internet (`tfds build`) or use 'digits', a .npz file or an image folder."
        )
    if not prepared:
        builder.download_and_prepare()
    xs, ys = [], []
    for split_name in builder.info.splits:
        ds = builder.as_dataset(split=split_name, as_supervised=True)
        for image, label in tfds.as_numpy(ds):
            xs.append(image)
            ys.append(label)
    names = list(builder.info.features["label"].names)
    return _as_images(np.stack(xs)), np.asarray(ys, "int64"), names


def load(
    name_or_path: str | os.PathLike[str],
    *,
    validation_fraction: float = 0.15,
    test_fraction: float = 0.25,
    seed: int = 0,
    image_size: int | tuple[int, int] | None = None,
) -> Splits:
    """Load a data set and split it, stratified by class, with a seed.

    Args:
        name_or_path: ``"digits"``, a ``.npz`` path, an image folder, or a TFDS name.
        validation_fraction: float in (0, 1). Share of all examples for validation.
        test_fraction: float in (0, 1). Share of all examples for the test split.
        seed: int. Seed of the split.
        image_size: optional int or (height, width) to resize images to.

    Example:
    >>> splits = load("digits", seed=0)
    >>> splits.input_shape, splits.num_classes
    ((8, 8, 1), 10)
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(
            f"name_or_path must be 'digits', a .npz path, an image folder or a TFDS name, "
            f"received {name_or_path!r} of type {type(name_or_path).__name__}."
        )
    source = v.string("name_or_path", os.fspath(name_or_path))
    if image_size is not None:
        _image_size(image_size)
    if source == "digits":
        x, y, names = load_digits_arrays()
        x = _resize(x, image_size)
    elif source.endswith(".npz"):
        if not os.path.isfile(source):
            raise FileNotFoundError(f"data file {source!r} does not exist.")
        x, y, names = load_npz(source)
        x = _resize(x, image_size)
    elif os.path.isdir(source):
        x, y, names = load_image_folder(source, image_size)
    elif os.sep in source or source.startswith("."):
        raise FileNotFoundError(f"data path {source!r} does not exist.")
    else:
        x, y, names = load_tfds(source)
        x = _resize(x, image_size)
    return split(
        x, y, validation_fraction=validation_fraction, test_fraction=test_fraction,
        seed=seed, class_names=names, source=source,
    )


def describe(splits: Splits) -> dict[str, Any]:
    """A JSON-able summary of a :class:`Splits`."""
    return {
        "source": splits.source,
        "input_shape": list(splits.input_shape),
        "num_classes": splits.num_classes,
        "train": int(len(splits.y_train)),
        "validation": int(len(splits.y_val)),
        "test": int(len(splits.y_test)),
        "class_counts": splits.class_counts(),
    }
