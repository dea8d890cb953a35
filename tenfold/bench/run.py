"""Running registered benchmarks with progress and saving their results."""

from __future__ import annotations

import time
from pathlib import Path

from tenfold import registry
from tenfold.bench.harness import BenchContext, command_line, save_result
from tenfold.env import environment


def run_benchmarks(names: list[str], *, quick: bool, out_dir: Path) -> list[Path]:
    """Run each named benchmark in turn; write its JSON and rebuild RESULTS.md."""
    paths = []
    env = environment()
    for i, name in enumerate(names, 1):
        fn = registry.get("benchmarks", name)
        print(f"[{i}/{len(names)}] {name}: {fn.description}", flush=True)
        start = time.perf_counter()
        result = fn(BenchContext(quick=quick, out_dir=out_dir))
        result.seconds = time.perf_counter() - start
        result.env = result.env or env
        result.quick = quick
        result.command = result.command or command_line()
        path = save_result(result, out_dir)
        print(f"    done in {result.seconds:.0f} s → {path}", flush=True)
        for row in result.rows:
            if "ratio" in row:
                goal = f"  goal {row['goal']}: {'met' if row.get('goal_met') else 'NOT met'}" if row.get("goal") else ""
                print(f"    {row['metric']}: B/A = {row['ratio']:.3f}{goal}", flush=True)
        paths.append(path)
    return paths
