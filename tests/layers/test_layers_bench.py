"""`tenfold bench layers --quick` produces its rows, tables and plot (slow: about 2 minutes)."""

import pytest

from tenfold.bench import BenchContext, load_all, run_benchmark


@pytest.mark.slow
def test_layers_benchmark_quick(tmp_path):
    load_all()
    result = run_benchmark("layers", BenchContext(quick=True, out_dir=tmp_path, log=lambda s: None))
    metrics = [row["metric"] for row in result.rows]
    assert metrics == [
        "ACNet inference time, deployed vs plain conv net",
        "ACNet inference time, unfused vs deployed",
        "WS training step time",
    ]
    assert all(row["ratio"] > 0 for row in result.rows)
    assert "goal ≤ 1e-5: met" in result.tables[0]
    assert "ExtendedBatchNormalization" in result.tables[1]
    assert (tmp_path / "layers_ebn.png").is_file()
