"""The shape of tenfold/bench: short functions, and the benchmarks' own rules are the library's."""

import ast
from pathlib import Path

import numpy as np
import pytest

import tenfold.bench
from tenfold.bench import longtail
from tenfold.metrics import shot_group_masks
from tenfold.train.evaluate import classification_metrics

BENCH = Path(tenfold.bench.__file__).parent


def test_no_function_in_tenfold_bench_is_over_60_lines():
    long = []
    for path in sorted(BENCH.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 60:
                    long.append(f"{path.relative_to(BENCH)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long


def test_longtail_table_groups_classes_by_the_metrics_rule():
    counts = [105, 50, 41, 40, 10, 9, 1]  # the boundaries: > 40 many, < 10 few
    runs = [{m: {"balanced": 0.5, "many": 0.6, "medium": 0.5, "few": 0.4} for m in longtail.METHODS}]
    header = longtail._table(100, runs, counts).splitlines()[0]
    assert "many-shot (> 40): classes [0, 1, 2], medium: [3, 4], few-shot (< 10): [5, 6]." in header
    masks = shot_group_masks(counts, many=longtail.MANY, few=longtail.FEW)
    assert np.flatnonzero(masks["medium"]).tolist() == [3, 4]


def test_longtail_scores_are_evaluates_shot_groups_and_match_numpy():
    rng = np.random.default_rng(0)
    counts = [105, 50, 41, 40, 10, 9, 1]
    y = np.repeat(np.arange(7), 6)
    logits = rng.normal(size=(42, 7))
    logits[np.arange(42), y] += rng.uniform(0.0, 2.0, size=42)  # some classes better than chance
    scores = longtail._scores(classification_metrics(logits, y, counts, many=longtail.MANY, few=longtail.FEW))
    recall = np.array([np.mean(logits.argmax(-1)[y == k] == k) for k in range(7)], dtype="float64")
    assert scores["balanced"] == pytest.approx(recall.mean(), abs=1e-12)
    for group, classes in (("many", [0, 1, 2]), ("medium", [3, 4]), ("few", [5, 6])):
        assert scores[group] == pytest.approx(recall[classes].mean(), abs=1e-12), group


def test_longtail_methods_are_recipes_at_the_benchmark_setting():
    recipes = {m: longtail._recipe(50, 3, 7, 16, sets) for m, sets in longtail.TRAINED.items()}
    recipes["LDAM-DRW"] = longtail._recipe(50, 3, 7, 16, [*longtail.LDAM, "callbacks.drw={start_fraction: 0.65}"])
    for r in recipes.values():
        assert (r.seed, r.data.imbalance_factor, r.train.epochs, r.model.width) == (3, 50, 7, 16)
        assert r.precision.policy == "float32" and r.data.augment.random_translation == 0
        assert (r.optimizer.name, r.optimizer.learning_rate, r.schedule.name) == ("adam", 0.003, "cosine")
        assert (r.evaluate.many, r.evaluate.few) == (longtail.MANY, longtail.FEW)
    assert {m: r.loss.name for m, r in recipes.items()} == {
        "cross-entropy": "cross_entropy", "class-balanced softmax": "class_balanced",
        "class-balanced focal": "class_balanced", "balanced softmax": "balanced_softmax",
        "logit-adjusted loss": "logit_adjusted", "square-root resampling": "cross_entropy", "LDAM-DRW": "ldam"}
    assert recipes["class-balanced focal"].loss.options == {"base": "focal", "gamma": 1.0}
    assert recipes["square-root resampling"].data.sampler == "square_root"
    assert recipes["LDAM-DRW"].model.head == "normed" and recipes["LDAM-DRW"].callbacks.drw.start_fraction == 0.65
    p = recipes["cross-entropy"].evaluate.posthoc
    assert (p.adjust_logits, p.tau, p.tau_norm, p.crt) == (True, 1.0, True, False)
    assert not recipes["balanced softmax"].evaluate.posthoc.tau_norm  # post-hoc only on cross-entropy
    covered = {*recipes, "post-hoc adjustment", "τ-norm", "cRT"}
    assert covered == set(longtail.METHODS)


def test_longtail_trains_through_the_trainer_and_reads_the_tau_it_chose():
    run, metrics, notes = longtail._trained(longtail._recipe(100, 0, 1, 4, longtail.TRAINED["cross-entropy"]))
    assert set(metrics["test"]) == {"plain", "adjusted", "tau_norm"}
    assert run.data.class_counts == [105, 62, 37, 22, 13, 8, 4, 2, 1, 1]
    tau = longtail._chosen_tau(notes)
    assert tau in {round(0.1 * k, 1) for k in range(21)}  # search_tau's grid 0, 0.1, ..., 2
    assert len(longtail._recalls(metrics["test"]["plain"])) == 10
