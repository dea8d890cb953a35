"""The benchmarks' figures: panels described as data, drawn by one function.

A benchmark says what to draw (:class:`Panel` of :class:`Series`: lines, bars, points,
horizontal reference lines) and :func:`figure` draws the panels side by side and writes
the PNG through :mod:`tenfold._plot`.

Example:
>>> import pathlib, tempfile
>>> panel = Panel([line([1, 2, 4], [1.0, 1.8, 3.1], "measured"), hline(1.0, "plain")],
...               title="speed", xlabel="factor", ylabel="÷ plain")
>>> path = figure(pathlib.Path(tempfile.mkdtemp()) / "speed.png", [panel])
>>> pathlib.Path(path).read_bytes()[:4] == b"\\x89PNG"
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tenfold._plot import pyplot, save_figure

KINDS = ("line", "bar", "scatter", "hline")


@dataclass
class Series:
    """One drawn thing: ``kind`` in ``KINDS``; ``style`` holds matplotlib keywords."""

    kind: str
    x: Sequence[Any]
    y: Sequence[float]
    label: str | None = None
    style: dict[str, Any] = field(default_factory=dict)


def line(x: Sequence[Any], y: Sequence[float], label: str | None = None, **style: Any) -> Series:
    return Series("line", x, y, label, style)


def bar(x: Sequence[Any], y: Sequence[float], label: str | None = None, **style: Any) -> Series:
    return Series("bar", x, y, label, style)


def scatter(x: Sequence[Any], y: Sequence[float], label: str | None = None, **style: Any) -> Series:
    return Series("scatter", x, y, label, style)


def hline(y: float, label: str | None = None, **style: Any) -> Series:
    return Series("hline", (), (y,), label, style)


def grouped_bars(groups: dict[str, Sequence[float]], errors: dict[str, Sequence[float]] | None = None,
                 *, width: float = 0.8, **style: Any) -> list[Series]:
    """One bar series per group, side by side around the category positions 0, 1, 2, ..."""
    step = width / len(groups)
    out = []
    for i, (label, values) in enumerate(groups.items()):
        x = np.arange(len(values)) + (i - (len(groups) - 1) / 2) * step
        extra = {"yerr": errors[label], "capsize": 2} if errors else {}
        out.append(bar(x, values, label, width=step, **extra, **style))
    return out


@dataclass
class Panel:
    """One set of axes. ``xscale`` / ``yscale``: a scale name or ``set_xscale`` keywords;
    ``xticks``: (positions, labels[, keywords]); ``legend``: keywords, None for none."""

    series: list[Series]
    title: str = ""
    xlabel: str = ""
    ylabel: str = ""
    xscale: str | dict[str, Any] | None = None
    yscale: str | dict[str, Any] | None = None
    ylim: tuple[float, float] | None = None
    xticks: tuple[Any, ...] | None = None
    yticks: Sequence[float] | None = None
    grid: dict[str, Any] | None = None
    legend: dict[str, Any] | None = field(default_factory=dict)


def _draw_series(ax: Any, s: Series) -> None:
    if s.kind == "line":
        ax.plot(s.x, s.y, label=s.label, **s.style)
    elif s.kind == "bar":
        ax.bar(s.x, s.y, label=s.label, **s.style)
    elif s.kind == "scatter":
        ax.scatter(s.x, s.y, label=s.label, **s.style)
    elif s.kind == "hline":
        ax.axhline(s.y[0], label=s.label, **s.style)
    else:
        raise ValueError(f"Series kind must be one of {', '.join(KINDS)}, received {s.kind!r}.")


def _scale(setter: Any, scale: str | dict[str, Any] | None) -> None:
    if isinstance(scale, dict):
        setter(**scale)
    elif scale is not None:
        setter(scale)


def _draw(ax: Any, panel: Panel) -> None:
    for s in panel.series:
        _draw_series(ax, s)
    ax.set_title(panel.title)
    ax.set_xlabel(panel.xlabel)
    ax.set_ylabel(panel.ylabel)
    _scale(ax.set_xscale, panel.xscale)
    _scale(ax.set_yscale, panel.yscale)
    if panel.ylim is not None:
        ax.set_ylim(*panel.ylim)
    if panel.xticks is not None:
        positions, labels, *keywords = panel.xticks
        ax.set_xticks(positions, labels, **(keywords[0] if keywords else {}))
    if panel.yticks is not None:
        ax.set_yticks(panel.yticks)
    if panel.grid is not None:
        ax.grid(**panel.grid)
    if panel.legend is not None and any(s.label for s in panel.series):
        ax.legend(**panel.legend)


def figure(path: str | Path, panels: Sequence[Panel], *, size: tuple[float, float] = (7, 4)) -> str:
    """Draw ``panels`` in one row, write the PNG to ``path`` (folder created); its path."""
    fig, axes = pyplot().subplots(1, len(panels), figsize=size, squeeze=False)
    for ax, panel in zip(axes[0], panels):
        _draw(ax, panel)
    return str(save_figure(fig, path))
