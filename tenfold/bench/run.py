"""Running registered benchmarks with progress and saving their results."""

from __future__ import annotations

from pathlib import Path

from tenfold.bench.harness import BenchContext, BenchResult, run_benchmark, save_result


def _print_rows(result: BenchResult) -> None:
    for row in result.rows:
        if "ratio" in row:
            goal = f"  goal {row['goal']}: {'met' if row.get('goal_met') else 'NOT met'}" if row.get("goal") else ""
            print(f"    {row['metric']}: B/A = {row['ratio']:.3f}{goal}", flush=True)


def run_benchmarks(names: list[str], *, quick: bool, out_dir: Path) -> list[Path]:
    """Run each named benchmark in turn; write its JSON and rebuild RESULTS.md."""
    from tenfold import registry

    paths = []
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name}: {registry.get('benchmarks', name).description}", flush=True)
        result = run_benchmark(name, BenchContext(quick=quick, out_dir=out_dir))
        path = save_result(result, out_dir)
        print(f"    done in {result.seconds:.0f} s → {path}", flush=True)
        _print_rows(result)
        paths.append(path)
    return paths
