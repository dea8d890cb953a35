"""Streaming image pipelines: values, augmentation, echo placement, bad files, reads per epoch."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tenfold.data import stream


def _folder(root, n=12, size=(24, 20), seed=0):
    """``n`` lossless PNG files (RGB, grey, RGBA in turn) and their labels 0..2."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    paths, labels, arrays = [], [], []
    for i in range(n):
        mode = ("RGB", "L", "RGBA")[i % 3]
        shape = (size[1], size[0]) + {"RGB": (3,), "L": (), "RGBA": (4,)}[mode]
        a = rng.integers(0, 256, shape, dtype=np.uint8)
        path = os.fspath(root / f"{i:03d}.png")
        Image.fromarray(a, mode).save(path)
        paths.append(path)
        labels.append(i % 3)
        arrays.append(a)
    return paths, labels, arrays


def _as_rgb(a):
    return np.repeat(a[..., None], 3, -1) if a.ndim == 2 else a[..., :3]


def test_evaluation_pipeline_equals_pillow_decoding(tmp_path):
    paths, labels, arrays = _folder(tmp_path)
    pipe = stream.image_pipeline(paths, labels, image_size=(20, 24), batch_size=5, training=False)
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in pipe.dataset])
    x, y = np.concatenate(xs), np.concatenate(ys)
    assert x.dtype == np.float32 and y.dtype == np.int32 and x.shape == (12, 20, 24, 3)
    assert y.tolist() == labels  # files in order, the last partial batch kept
    # same size: no resampling, so the pixels are Pillow's exactly (grey → 3 equal channels, alpha dropped)
    np.testing.assert_array_equal(x, np.stack([_as_rgb(a) for a in arrays]).astype("float32") / 255.0)
    grey = stream.image_pipeline(paths, labels, image_size=(20, 24), batch_size=12, training=False, channels=1)
    assert next(iter(grey.dataset))[0].shape == (12, 20, 24, 1)


def test_training_crops_flips_seeded_and_fresh_each_epoch(tmp_path):
    paths, labels, _ = _folder(tmp_path, n=8, size=(64, 48))
    # JPEG copies take the decode-and-crop path
    jpegs = []
    for p in paths:
        jp = p.replace(".png", ".jpg")
        Image.open(p).convert("RGB").save(jp)
        jpegs.append(jp)

    def epochs(files, seed):
        pipe = stream.image_pipeline(files, labels, image_size=16, batch_size=4, training=True, seed=seed, num_parallel_calls=1)
        return [np.concatenate([x.numpy() for x, _ in pipe.dataset]) for _ in range(2)]

    for files in (paths, jpegs):
        a, b = epochs(files, 0), epochs(files, 0)
        assert a[0].shape == (8, 16, 16, 3) and 0.0 <= a[0].min() and a[0].max() <= 1.0
        np.testing.assert_array_equal(np.sort(a[0].ravel()), np.sort(b[0].ravel()))
        assert not np.allclose(np.sort(a[0].ravel()), np.sort(a[1].ravel()))  # new crops next epoch


def test_bad_file_is_skipped_and_counted_or_named_before_training(tmp_path):
    paths, labels, _ = _folder(tmp_path, n=9)
    broken = os.fspath(tmp_path / "broken.png")
    with open(broken, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n garbage")
    files, ys = paths[:4] + [broken] + paths[4:], labels[:4] + [1] + labels[4:]
    for training in (True, False):
        pipe = stream.image_pipeline(files, ys, image_size=8, batch_size=3, training=training)
        seen = sum(int(x.shape[0]) for x, _ in pipe.dataset)  # no error mid-epoch
        assert seen == 9 and pipe.skipped == 1 and pipe.files_read.value == 10
    with pytest.raises(ValueError, match=r"broken\.png.*cannot be used"):
        stream.image_pipeline(files, ys, image_size=8, batch_size=3, training=True, on_bad_file="fail")


def _counting_reader(monkeypatch):
    """A test double on the reader: counts every file read, in Python."""
    reads = []

    def read(tf_module, path):
        def py_read(p):
            reads.append(p.numpy().decode())
            return tf.io.read_file(p)

        out = tf.py_function(py_read, [path], tf.string)
        out.set_shape([])
        return out

    monkeypatch.setattr(stream, "_read_file", read)
    return reads


def test_files_are_read_as_needed_never_whole_up_front(tmp_path, monkeypatch):
    paths, labels, _ = _folder(tmp_path, n=60, size=(12, 12))
    reads = _counting_reader(monkeypatch)
    pipe = stream.image_pipeline(paths, labels, image_size=8, batch_size=4, training=True, prefetch=1,
                                 num_parallel_calls=2)
    assert reads == []  # building the pipeline reads nothing
    it = iter(pipe.dataset)
    next(it)
    # one batch needs 4 files; the parallel readers and one prefetched batch add a few more
    assert 4 <= len(reads) <= 16
    for _ in it:
        pass
    assert sorted(reads) == sorted(paths)  # one epoch: every file read exactly once
    list(pipe.dataset)
    assert len(reads) == 120 and sorted(reads[60:]) == sorted(paths)
    assert reads[:60] != reads[60:]  # the file list is reshuffled each epoch


@pytest.mark.parametrize("echo_at", ["decode", "augment"])
def test_echo_reads_each_file_once_per_epoch(tmp_path, monkeypatch, echo_at):
    paths, labels, _ = _folder(tmp_path, n=16, size=(12, 12))
    reads = _counting_reader(monkeypatch)
    pipe = stream.image_pipeline(paths, labels, image_size=8, batch_size=4, training=True, echo=2, echo_at=echo_at)
    batches = list(pipe.dataset)
    assert sum(int(x.shape[0]) for x, _ in batches) == 32
    assert len(reads) == 16 and pipe.echo.fresh_examples == 16 and pipe.fresh_examples == 16
    y = np.concatenate([b[1].numpy() for b in batches])
    assert np.bincount(y).tolist() == [2 * c for c in np.bincount(labels).tolist()]


def test_class_balanced_sampling_on_the_file_list(tmp_path):
    paths, _, _ = _folder(tmp_path, n=40, size=(8, 8))
    labels = [0] * 36 + [1] * 4
    pipe = stream.image_pipeline(paths, labels, image_size=8, batch_size=40, training=True, augment=False,
                                 sampling="class_balanced", class_counts=[36, 4], seed=0)
    y = np.concatenate([np.concatenate([b.numpy() for _, b in pipe.dataset]) for _ in range(5)])
    assert len(y) == 200 and 0.35 < y.mean() < 0.65  # instance sampling would give 0.1


def test_named_errors(tmp_path):
    paths, labels, _ = _folder(tmp_path, n=3, size=(8, 8))
    kw = dict(image_size=8, batch_size=2, training=True)
    with pytest.raises(ValueError, match="echo_at must be one of 'decode', 'augment', received 'after'"):
        stream.image_pipeline(paths, labels, echo_at="after", **kw)
    with pytest.raises(ValueError, match="labels must have 3 entries"):
        stream.image_pipeline(paths, labels[:2], **kw)
    with pytest.raises(ValueError, match="files must hold at least one path"):
        stream.image_pipeline([], [], **kw)
    with pytest.raises(TypeError, match="files must be a list of paths"):
        stream.image_pipeline("a.png", [0], **kw)
    with pytest.raises(ValueError, match="class_counts is required with sampling='square_root'"):
        stream.image_pipeline(paths, labels, sampling="square_root", **kw)
    with pytest.raises(ValueError, match=r"crop_scale\[0\] must be <= crop_scale\[1\]"):
        stream.image_pipeline(paths, labels, crop_scale=(0.9, 0.5), **kw)
    with pytest.raises(ValueError, match="echo must be a number >= 1, received 0.5"):
        stream.image_pipeline(paths, labels, echo=0.5, **kw)


def test_without_tensorflow_the_message_names_the_extra(tmp_path, monkeypatch):
    import importlib

    real = importlib.import_module
    monkeypatch.setattr(importlib, "import_module",
                        lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name)) if name == "tensorflow" else real(name, *a, **k))
    with pytest.raises(ImportError, match=r"tenfold.data.image_pipeline needs TensorFlow.*tenfold\[cpu\]"):
        stream.image_pipeline(["a.png"], [0], image_size=8, batch_size=1, training=False)


@pytest.mark.slow  # a subprocess importing TensorFlow and the backend: 40-90 s on 2 busy cores
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_the_pipeline_trains_a_model_on_another_backend(tmp_path, backend):
    paths, labels, _ = _folder(tmp_path / "img", n=24, size=(20, 20))
    script = textwrap.dedent(f"""
        import json, keras, numpy as np
        from tenfold import models
        from tenfold.data import image_pipeline
        assert keras.backend.backend() == {backend!r}
        pipe = image_pipeline({paths!r}, {labels!r}, image_size=16, batch_size=8, training=True, echo=2)
        model = models.small_resnet((16, 16, 3), 3, width=4)
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        history = model.fit(pipe.dataset, epochs=2, verbose=0)
        print(json.dumps({{"loss": history.history["loss"], "fresh": pipe.fresh_examples}}))
    """)
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    import json

    record = json.loads(out.stdout.strip().splitlines()[-1])
    # Keras may open an extra iterator to look at the first batch: every file is read at least once
    assert len(record["loss"]) == 2 and np.all(np.isfinite(record["loss"])) and record["fresh"] >= 48


def test_echo_after_decode_crops_and_resizes_the_window_exactly():
    # bilinear sampling of a linear image is exact: pixel (i, j) of the output is the image
    # at y = oy + i (h - 1)/(out - 1), x = ox + j (w - 1)/(out - 1), corners on corners
    height, width, out = 40, 50, 8
    yy, xx = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing="ij")
    image = np.stack([yy, xx, 0.5 * yy + 2.0 * xx], axis=-1)  # values up to 125: exact in float32
    spec = stream._Spec((out, out), 3, (0.5, 1.0), (0.75, 1.33))
    window = (5, 7, 29, 36)  # offset y, offset x, height, width
    got = stream._crop_resized(tf, tf.constant(image, tf.float32), tf.constant(window), spec,
                               tf.constant([0, 0]))
    ys = window[0] + np.arange(out) * (window[2] - 1) / (out - 1)
    xs = window[1] + np.arange(out) * (window[3] - 1) / (out - 1)
    gy, gx = np.meshgrid(ys, xs, indexing="ij")
    expected = np.stack([gy, gx, 0.5 * gy + 2.0 * gx], axis=-1) / 255.0
    flipped = expected[:, ::-1]
    got = got.numpy()
    assert got.shape == (out, out, 3) and got.dtype == np.float32
    assert np.allclose(got, expected, atol=1e-5) or np.allclose(got, flipped, atol=1e-5)
