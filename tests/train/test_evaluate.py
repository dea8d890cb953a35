import numpy as np
import pytest

from tenfold.train.evaluate import classification_metrics, shot_groups


def test_shot_group_boundaries():
    # many: n > 100, few: n < 20, medium: 20 <= n <= 100
    groups = shot_groups([101, 100, 20, 19, 500], many=100, few=20)
    assert groups == {"many": [0, 4], "medium": [1, 2], "few": [3]}
    # one rule, the library's: few may reach many + 1 (then medium is empty), not beyond
    assert shot_groups([3, 6, 7], many=5, few=6) == {"many": [1, 2], "medium": [], "few": [0]}
    with pytest.raises(ValueError, match=r"few \(10\) must be at most many \+ 1"):
        shot_groups([1, 2], many=5, few=10)


def test_metrics_against_hand_computation():
    rng = np.random.default_rng(0)
    y = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    pred = np.array([0, 0, 1, 0, 1, 0, 2, 0, 0, 0])
    logits = rng.normal(size=(10, 3)) * 0.01
    logits[np.arange(10), pred] += 5
    m = classification_metrics(logits, y, [300, 50, 5], many=100, few=20)
    assert m["accuracy"] == pytest.approx(5 / 10)
    assert m["per_class_accuracy"] == pytest.approx([3 / 4, 1 / 2, 1 / 4])
    assert m["balanced_accuracy"] == pytest.approx((3 / 4 + 1 / 2 + 1 / 4) / 3)
    assert m["shots"]["many"]["accuracy"] == pytest.approx(3 / 4)
    assert m["shots"]["medium"]["accuracy"] == pytest.approx(1 / 2)
    assert m["shots"]["few"]["accuracy"] == pytest.approx(1 / 4)


def test_absent_class_is_none_and_excluded():
    logits = np.eye(3)[[0, 1]]
    m = classification_metrics(logits, np.array([0, 1]), [10, 10, 10], many=5, few=1)
    assert m["per_class_accuracy"][2] is None
    assert m["balanced_accuracy"] == 1.0
