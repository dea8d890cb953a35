"""The layer rule of docs/architecture.md, checked by import-linter (pyproject.toml
``[tool.importlinter]``): cli → bench → train → library → ops, and no import cycle between
the trainer's stages or the CLI's commands."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def test_import_contracts_are_kept():
    proc = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "2 kept, 0 broken" in proc.stdout


def test_the_contract_catches_a_violation(tmp_path):
    # the same contracts on a copy of the package in which ops imports the trainer: broken
    import shutil

    shutil.copytree(ROOT / "tenfold", tmp_path / "tenfold",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / "tenfold" / "ops" / "factored.py", "a", encoding="utf-8") as f:
        f.write("\nfrom tenfold.train import recipe  # noqa: E402,F401\n")
    proc = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=tmp_path, capture_output=True, text=True,
        timeout=300, check=False, env={"PYTHONPATH": str(tmp_path), "PATH": ""},
    )
    assert proc.returncode != 0
    assert "tenfold.ops is not allowed to import tenfold.train" in proc.stdout
