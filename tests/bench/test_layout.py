"""The shape of tenfold/bench: short functions, and the benchmarks' own rules are the library's."""

import ast
from pathlib import Path

import numpy as np

import tenfold.bench
from tenfold.bench import longtail
from tenfold.metrics import shot_group_masks

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


def test_longtail_per_class_recall_matches_numpy():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 5)
    logits = rng.normal(size=(20, 4))
    pred = logits.argmax(-1)
    expected = [np.mean(pred[y == k] == k) for k in range(4)]
    np.testing.assert_allclose(longtail._per_class(logits, y, 4), expected, rtol=1e-6)
