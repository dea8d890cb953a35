"""The input benchmark's goal rows: R sized against 2, and equal-time accuracy that counts
only when the e = 1 run learned (above twice chance)."""

import numpy as np
import pytest

from tenfold.bench import input as bench


def test_r_row_is_memory_over_pipeline_with_goal_two():
    samples = {"e=1": [4.0, 5.0, 6.0], "memory": [9.0, 10.0, 11.0]}
    row = bench._r_row(samples)
    assert row["ratio"] == pytest.approx(10.0 / 5.0) and row["goal_met"]
    row = bench._r_row({"e=1": [5.0], "memory": [5.8]})
    assert row["ratio"] == pytest.approx(1.16) and not row["goal_met"]


@pytest.mark.parametrize("plain, echoed, met", [
    (0.60, 0.595, True),   # learned, within one point
    (0.60, 0.58, False),   # learned, two points lower
    (0.104, 0.104, False),  # e = 1 at chance (10 classes): the comparison says nothing
])
def test_budget_rows_need_a_model_that_learned(plain, echoed, met):
    used = {1: (365, 11680, plain), 2: (427, 6832, echoed), 4: (448, 3584, echoed)}
    rows = bench._budget_rows(used, num_classes=10)
    assert [r["b"] for r in rows] == ["e=2", "e=4"]
    assert all(r["goal_met"] is met for r in rows)
    assert all(np.isclose(r["ratio"], echoed / plain) for r in rows)
    assert ("at chance" in rows[0]["metric"]) is (plain < 0.2)


def test_generated_digits_are_lighter_than_their_background():
    # task 2: a fixed polarity, so that the model can learn the shape within the budget
    from tenfold.bench.harness import digit_images

    x, _ = digit_images()
    rng = np.random.default_rng(3)
    luma = np.array([0.299, 0.587, 0.114])
    for k in range(6):
        image = bench._draw(rng, x[k]).astype(float) @ luma
        # the digit's strokes are the brightest pixels, the corners are background
        corners = np.concatenate([image[:8, :8].ravel(), image[-8:, -8:].ravel()])
        assert np.percentile(image, 99) - corners.mean() >= bench.MIN_CONTRAST - 10


def test_the_cache_folder_is_written_once_and_names_the_task_version(tmp_path, monkeypatch):
    monkeypatch.setenv("TENFOLD_CACHE", str(tmp_path))
    root = bench.generated_folder(12, log=lambda s: None)
    assert root.name == f"bench-input-{bench.SOURCE}-12-t{bench.TASK}"
    files = sorted(root.rglob("*.jpg"))
    assert len(files) == 12 and {f.parent.parent.name for f in files} == {"train", "test"}
    stamp = files[0].stat().st_mtime_ns
    assert bench.generated_folder(12, log=lambda s: None) == root and files[0].stat().st_mtime_ns == stamp
