"""Results on disk: ``<out_dir>/<name>.json`` per benchmark and ``RESULTS.md`` beside them.

``RESULTS.md`` is rebuilt from every JSON file: an at-a-glance table of the goals met, then
one section per benchmark (rows, tables, notes, plots). Plot links are relative to
``RESULTS.md``, made by :func:`plot_link` when a result is saved.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tenfold.bench.harness.result import RESULTS_DIR, BenchResult


def plot_link(path: str | Path, out_dir: Path) -> str:
    """``path`` (a file written under ``out_dir``) as ``RESULTS.md`` beside ``out_dir`` links it.

    Example:
    >>> plot_link("/tmp/bench/results/echo.png", Path("/tmp/bench/results"))
    'results/echo.png'
    """
    target = Path(os.path.abspath(path))
    return Path(os.path.relpath(target, os.path.abspath(out_dir.parent))).as_posix()


def save_result(result: BenchResult, out_dir: Path = RESULTS_DIR) -> Path:
    """Write ``out_dir/<name>.json`` (plots as links) and rebuild ``RESULTS.md`` beside it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    saved = {**result.__dict__, "plots": [plot_link(p, out_dir) for p in result.plots]}
    path = out_dir / f"{result.name}.json"
    path.write_text(json.dumps(saved, indent=2, default=str) + "\n", encoding="utf-8")
    write_results_md(out_dir, out_dir.parent / "RESULTS.md")
    return path


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _rows_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| metric | A | A median | B | B median | B/A (median) | IQR | goal | met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        met = r.get("goal_met")
        lines.append(
            f"| {r['metric']} | {r['a']} | {_fmt(r['a_median'])} {r.get('unit', '')} | {r['b']} | "
            f"{_fmt(r['b_median'])} {r.get('unit', '')} | **{r['ratio']:.3f}** | "
            f"{r['ratio_q25']:.3f}–{r['ratio_q75']:.3f} | {r.get('goal', '–')} | "
            f"{'yes' if met else ('no' if met is False else '–')} |"
        )
    return lines + [""]


def render(result: dict[str, Any]) -> str:
    """Markdown section of one result."""
    lines = [f"## {result.get('title', result['name'])}", "", result.get("description", ""), ""]
    env = result.get("env", {})
    # a result measured on an accelerator (tenfold.bench.gpu) names it; the CPU is the host
    where = (f"**{result['device']}** (Keras backend {env.get('backend', '?')}, JAX {env.get('jax', '-')}; "
             f"host {env.get('cpu', '?')}, {env.get('cpu_count', '?')} cores)" if result.get("device") else
             f"{env.get('cpu', '?')} ({env.get('cpu_count', '?')} cores; flags: "
             f"{', '.join(env.get('cpu_flags', [])) or 'n/a'}), TensorFlow {env.get('tensorflow', '-')}")
    lines.append(
        f"Measured {env.get('date', '?')} on {where}, Keras {env.get('keras', '?')}, "
        f"{'quick' if result.get('quick') else 'full'} mode, {result.get('seconds', 0):.0f} s."
    )
    lines += ["", f"Command: `{result.get('command', '')}`", ""]
    rows = result.get("rows", [])
    if rows and "ratio" in rows[0]:
        lines += _rows_table(rows)
    for table in result.get("tables", []):
        lines += [table, ""]
    lines += [f"- {note}" for note in result.get("notes", [])]
    if result.get("notes"):
        lines.append("")
    for plot in result.get("plots", []):
        lines += [f"![{result['name']}]({plot})", ""]
    return "\n".join(lines)


def at_a_glance(results: list[dict[str, Any]]) -> str:
    """Markdown table: per benchmark, how many of its goal rows are met, and the unmet ones.

    Example:
    >>> row = {"metric": "speed", "b": "fast", "ratio": 1.2, "goal": "≤ 1.1", "goal_met": False}
    >>> print(at_a_glance([{"name": "demo", "rows": [row]}]).splitlines()[-1])
    | [demo](#demo) | 0 of 1 | speed, fast: **1.200** (goal ≤ 1.1) |
    """
    lines = ["| benchmark | goals met | not met |", "|---|---|---|"]
    for result in results:
        judged = [r for r in result.get("rows", []) if r.get("goal_met") is not None]
        unmet = [f"{r['metric']}, {r.get('b', 'B')}: **{r['ratio']:.3f}** (goal {r.get('goal', '?')})"
                 for r in judged if not r["goal_met"]]
        count = f"{len(judged) - len(unmet)} of {len(judged)}" if judged else "–"
        mode = " (quick)" if result.get("quick") else ""
        lines.append(f"| [{result['name']}](#{result['name']}){mode} | {count} | "
                     f"{'; '.join(unmet) or '–'} |")
    return "\n".join(lines)


def write_results_md(results_dir: Path = RESULTS_DIR, target: Path | None = None) -> Path:
    """Rebuild RESULTS.md from every ``results_dir/*.json``: a summary, then one section each."""
    target = target or results_dir.parent / "RESULTS.md"
    results = [json.loads(path.read_text(encoding="utf-8"))
               for path in sorted(results_dir.glob("*.json"))]
    header = (
        "# Benchmark results\n\n"
        "Each benchmark compares A (the plain Keras way) with B (the technique) in one process, "
        "interleaved after a warm-up; ratios are medians of per-round B/A with their "
        "interquartile range. Regenerate a section with the command under it "
        "(`tenfold bench NAME`); this file is rebuilt from `benchmarks/results/*.json`.\n\n"
        "## At a glance\n\n" + at_a_glance(results) + "\n"
    )
    target.write_text(header + "\n" + "\n".join(render(r) for r in results), encoding="utf-8")
    return target
