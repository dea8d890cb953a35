"""matplotlib for every figure tenfold writes: the Agg backend (no display) and one save.

matplotlib is imported on first use, so importing tenfold does not pay for it.

Example:
>>> import tempfile, pathlib
>>> plt = pyplot()
>>> fig, ax = plt.subplots()
>>> _ = ax.plot([0, 1], [1, 0])
>>> path = save_figure(fig, pathlib.Path(tempfile.mkdtemp()) / "sub" / "line.png")
>>> path.is_file()
True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

DPI = 110


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path) -> Path:
    """Lay out ``fig``, write it to ``path`` (creating the folder) as PNG, and close it."""
    path = Path(path)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    pyplot().close(fig)
    return path
