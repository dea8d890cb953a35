"""Stage "report": the human side of a run directory — plots (PNG + CSV), ``report.md``
and the record that becomes ``metrics.json``.

matplotlib with the Agg backend: no display needed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import keras
import numpy as np

from tenfold._plot import pyplot, save_figure
from tenfold.train.build import Run
from tenfold.train.evaluate import shot_groups
from tenfold.train.files import read_csv, write_csv_atomic, write_text_atomic


def learning_rate_curve(optimizer: keras.optimizers.Optimizer, steps: int) -> list[float]:
    """The learning rate at each of ``steps`` optimizer steps.

    Schedules are pure functions of the step, so the curve is computed after training from
    the schedule itself: exact, free of per-batch overhead, and right across resumes.
    """
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # AGC: the wrapped one's rate
    schedule = getattr(optimizer, "_learning_rate", None)
    if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        try:
            values = schedule(keras.ops.arange(steps, dtype="int64"))
            return [float(v) for v in np.asarray(keras.ops.convert_to_numpy(values)).reshape(-1)]
        except ValueError:  # a schedule that branches on a scalar step (CosineDecay's warm-up)
            at = np.unique(np.linspace(0, steps - 1, min(steps, 2000)).round().astype("int64"))
            sampled = [float(keras.ops.convert_to_numpy(schedule(int(i)))) for i in at]
            return [float(v) for v in np.interp(np.arange(steps), at, sampled)]
    rate = float(np.asarray(keras.ops.convert_to_numpy(optimizer.learning_rate)))
    return [rate] * steps


def plot_history(history_csv: Path, out: Path) -> Path:
    """Loss and accuracy per epoch, training and validation."""
    plt = pyplot()
    _, rows = read_csv(history_csv)
    epochs = [int(r["epoch"]) for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key in zip(axes, ("loss", "accuracy")):
        for prefix, style in (("", "-"), ("val_", "--")):
            name = prefix + key
            if rows and name in rows[0]:
                ax.plot(epochs, [float(r[name]) for r in rows], style, label=name)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure(fig, out)
    return out


def plot_learning_rate(curve: list[float], out: Path, csv_out: Path, steps_per_epoch: int) -> Path:
    """Learning rate per optimizer step."""
    write_csv_atomic(csv_out, ["step", "learning_rate"], [[i, v] for i, v in enumerate(curve)])
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(np.arange(len(curve)), curve)
    ax.set_xlabel(f"step ({steps_per_epoch} per epoch)")
    ax.set_ylabel("learning rate")
    ax.set_title("learning rate per step")
    ax.grid(alpha=0.3)
    save_figure(fig, out)
    return out


def plot_per_class(
    per_class: dict[str, list[float | None]],
    class_counts: list[int],
    class_names: list[str],
    out: Path,
    csv_out: Path,
) -> Path:
    """Test accuracy per class, classes sorted by training frequency (head → tail).

    ``per_class`` maps a label (e.g. ``"plain"``, ``"adjusted"``) to per-class accuracies.
    """
    order = sorted(range(len(class_counts)), key=lambda c: (-class_counts[c], c))
    labels = list(per_class)
    write_csv_atomic(
        csv_out,
        ["class", "name", "train_count", *[f"accuracy_{k}" for k in labels]],
        [[c, class_names[c], class_counts[c], *[per_class[k][c] for k in labels]] for c in order],
    )
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(order) + 2), 4))
    width = 0.8 / max(1, len(labels))
    x = np.arange(len(order))
    for i, key in enumerate(labels):
        values = [per_class[key][c] if per_class[key][c] is not None else 0.0 for c in order]
        ax.bar(x + (i - (len(labels) - 1) / 2) * width, values, width, label=key)
    ax.set_xticks(x, [f"{class_names[c]}\n(n={class_counts[c]})" for c in order], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("test accuracy")
    ax.set_title("per-class test accuracy, classes by training count")
    ax.grid(alpha=0.3, axis="y")
    if len(labels) > 1:
        ax.legend()
    save_figure(fig, out)
    return out


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def summary_rows(metrics: dict[str, Any]) -> list[tuple[str, str, str, str, str, str]]:
    """(variant, accuracy, balanced, many, medium, few) rows for each evaluated variant."""
    rows = []
    for variant, m in metrics["test"].items():
        shots = m["shots"]
        rows.append((
            variant, _pct(m["accuracy"]), _pct(m["balanced_accuracy"]),
            _pct(shots["many"]["accuracy"]), _pct(shots["medium"]["accuracy"]),
            _pct(shots["few"]["accuracy"]),
        ))
    return rows


def write_report(out_dir: Path, metrics: dict[str, Any], recipe_yaml: str, env: dict[str, Any]) -> Path:
    """``report.md``: headline numbers first, then data, training, plots, recipe, machine."""
    info = metrics["run"]
    lines = [
        f"# tenfold run: {info['recipe']}",
        "",
        info.get("description", ""),
        "",
        "## Test results",
        "",
        "| model | accuracy | balanced accuracy | many-shot | medium-shot | few-shot |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {' | '.join(r)} |" for r in summary_rows(metrics)]
    shots = metrics["shot_groups"]
    lines += [
        "",
        f"Shot groups by training count: many > {shots['many_threshold']}, few < "
        f"{shots['few_threshold']}, medium in between — many: classes {shots['many']}, "
        f"medium: {shots['medium']}, few: {shots['few']}. Test and validation splits are balanced.",
        "",
        *_training_lines(info),
        *_closing_lines(recipe_yaml, env),
    ]
    path = out_dir / "report.md"
    write_text_atomic(path, "\n".join(lines))
    return path


def _training_lines(info: dict[str, Any]) -> list[str]:
    lines = [
        "## Data and training",
        "",
        f"- Data: `{info['data']}`, input {info['input_shape']}, {info['num_classes']} classes; "
        f"{info['train_examples']} training examples (imbalance factor "
        f"{info['imbalance_factor'] or 1}, counts {info['class_counts']}), "
        f"{info['validation_examples']} validation, {info['test_examples']} test.",
        f"- Model: {info['model']}, {info['parameters']:,} parameters.",
        f"- Training: {info['epochs']} epochs × {info['steps_per_epoch']} steps, "
        f"{info['train_seconds']:.1f} s ({info['steps_per_second']:.1f} steps/s)"
        + (f", resumed from epoch {info['resumed_from_epoch']}" if info.get("resumed_from_epoch") else "")
        + ".",
    ]
    lines += [f"- {note}" for note in info.get("notes", [])]
    lines += ["", "## Plots", ""]
    for title, png in (
        ("Training curves", "plots/history.png"),
        ("Learning rate per step", "plots/learning_rate.png"),
        ("Per-class test accuracy (head → tail)", "plots/per_class_accuracy.png"),
    ):
        lines += [f"### {title}", "", f"![{title}]({png})", ""]
    return lines


def _closing_lines(recipe_yaml: str, env: dict[str, Any]) -> list[str]:
    return [
        "## Files",
        "",
        "`model.keras` (trained model), `deploy/` (exported model), `metrics.json`, "
        "`history.csv`, `plots/*.png` with their `*.csv`, `tensorboard/`, `recipe.yaml`, `env.json`.",
        "",
        "## Recipe (fully resolved)",
        "",
        "```yaml",
        recipe_yaml.rstrip(),
        "```",
        "",
        "## Machine",
        "",
        f"{env.get('cpu')} ({env.get('cpu_count')} cores, flags {', '.join(env.get('cpu_flags', []))}); "
        f"TensorFlow {env.get('tensorflow', '-')}, Keras {env.get('keras')}, Python {env.get('python')}.",
        "",
    ]


def summary_table(metrics: dict[str, Any]) -> str:
    """The test results as a plain-text table for the terminal."""
    header = ("model", "accuracy", "balanced", "many", "medium", "few")
    rows = [header, *summary_rows(metrics)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_plots(run: Run, results: dict[str, Any]) -> None:
    """``plots/``: training curves, learning rate per step, per-class test accuracy."""
    out = run.out
    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    plot_history(out / "history.csv", plots / "history.png")
    shutil.copyfile(out / "history.csv", plots / "history.csv")  # each plot beside its CSV
    total_steps = run.recipe.train.epochs * run.steps_per_epoch
    plot_learning_rate(
        learning_rate_curve(run.model.optimizer, total_steps), plots / "learning_rate.png",
        plots / "learning_rate.csv", run.steps_per_epoch,
    )
    plot_per_class(
        {k: v["per_class_accuracy"] for k, v in results["test"].items()},
        run.data.class_counts, run.data.class_names, plots / "per_class_accuracy.png",
        plots / "per_class_accuracy.csv",
    )


def metrics_record(run: Run, facts: dict[str, Any], results: dict[str, Any],
                   notes: list[str]) -> dict[str, Any]:
    """What ``metrics.json`` holds: the run's facts, its shot groups and the results."""
    recipe, s, e = run.recipe, run.data, run.recipe.evaluate
    groups = shot_groups(run.data.class_counts, many=e.many, few=e.few)
    info = {
        "recipe": recipe.name, "description": recipe.description, "data": s.source,
        "input_shape": list(s.input_shape), "num_classes": s.num_classes,
        "class_names": s.class_names, "class_counts": run.data.class_counts,
        "imbalance_factor": recipe.data.imbalance_factor, "train_examples": s.examples("train"),
        "validation_examples": s.examples("val"), "test_examples": s.examples("test"),
        **({"bad_files_skipped": s.files.bad_files} if s.files is not None else {}),
        "model": recipe.model.name or recipe.model.path or recipe.model.factory, "parameters": int(run.model.count_params()),
        "epochs": recipe.train.epochs, "steps_per_epoch": run.steps_per_epoch, "notes": notes,
        **facts,
    }
    return {
        "run": info,
        "shot_groups": {"many_threshold": e.many, "few_threshold": e.few, **groups},
        **results,
    }


def write_outputs(run: Run, metrics: dict[str, Any]) -> None:
    """Plots and ``report.md`` of a run (``metrics.json`` is the run directory's to write)."""
    tests = {k: v for k, v in metrics.items() if k in ("validation", "test")}
    write_plots(run, tests)
    env = json.loads((run.out / "env.json").read_text(encoding="utf-8"))
    write_report(run.out, metrics, run.recipe.to_yaml(), env)
