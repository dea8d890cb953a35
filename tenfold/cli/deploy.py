"""``tenfold deploy MODEL.keras -o OUT``: fuse for inference, check, export.

Loads a ``.keras`` model (``safe_mode`` on) and hands it to the trainer's deploy step
(:func:`tenfold.train.deploy.deploy`: fuse → compare on sample inputs with the original
evaluated in float32 → write
``OUT/model.keras``, ``OUT/saved_model`` and ``OUT/deploy.json``), then prints the parameter
counts and the largest difference. Exits with status 1 when the relative difference is
above ``--tolerance`` (nothing is written then), 2 on bad input.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, Optional

import keras
import numpy as np
import typer

from tenfold.cli._errors import CHECK_FAILED, fail
from tenfold.data import load
from tenfold.train.deploy import DeployMismatch, deploy


def sample_inputs(model: Any, *, samples: int, data: str | None, seed: int) -> np.ndarray:
    """Check inputs: the test split of ``data`` (a tenfold data source) or Gaussian noise."""
    if data is not None:
        x = load(data, seed=seed).x_test[:samples]
    else:
        if len(model.inputs) != 1:
            raise ValueError(f"the model has {len(model.inputs)} inputs; give --data or deploy it from Python.")
        shape = tuple(model.inputs[0].shape[1:])
        if any(d is None for d in shape):
            raise ValueError(f"the model's input shape {shape} has unknown sizes; give --data.")
        x = np.random.default_rng(seed).normal(size=(samples, *shape)).astype("float32")
    expected = tuple(model.inputs[0].shape[1:])
    if tuple(x.shape[1:]) != expected and all(d is not None for d in expected):
        raise ValueError(f"--data gives inputs of shape {tuple(x.shape[1:])}, the model takes {expected}.")
    return x


def load_model(model_path: Path) -> keras.Model:
    """The model of a ``.keras`` file, or a ValueError saying what is wrong with the file."""
    if not model_path.is_file():
        raise FileNotFoundError(f"model file {str(model_path)!r} does not exist.")
    if model_path.suffix != ".keras":
        raise ValueError(f"MODEL must be a .keras file, received {str(model_path)!r}.")
    if not zipfile.is_zipfile(model_path):
        raise ValueError(f"model file {str(model_path)!r} is not a .keras archive (truncated, "
                         "or not written by model.save).")
    try:
        return keras.saving.load_model(model_path, safe_mode=True)
    except Exception as err:  # noqa: BLE001 - any failure of a damaged archive: one message
        raise ValueError(f"model file {str(model_path)!r} cannot be loaded: {err}") from None


def deploy_file(
    model_path: Path, out: Path, *, samples: int = 64, data: str | None = None,
    tolerance: float = 1e-4, seed: int = 0,
) -> dict[str, Any]:
    """Fuse ``model_path`` into ``out``; returns the facts saved as ``deploy.json``."""
    if samples < 1:
        raise ValueError(f"--samples must be >= 1, received {samples}.")
    model = load_model(model_path)
    x = sample_inputs(model, samples=samples, data=data, seed=seed)
    checked_on = f"{len(x)} {'test examples of ' + data if data else 'Gaussian samples'}"
    return deploy(model, x, out, checked_on=checked_on, tolerance=tolerance, source=str(model_path))


def deploy_command(
    model: Path = typer.Argument(..., help="A trained .keras model."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder (model.keras, saved_model/)."),
    samples: int = typer.Option(64, "--samples", help="Number of inputs to compare outputs on."),
    data: Optional[str] = typer.Option(
        None, "--data", help="Compare on this data source's test split (e.g. digits) instead of noise."
    ),
    tolerance: float = typer.Option(1e-4, "--tolerance", help="Largest relative difference accepted."),
) -> None:
    """Fuse re-parameterized blocks and conv-BN pairs, check outputs, export."""
    try:
        facts = deploy_file(model, out, samples=samples, data=data, tolerance=tolerance)
    except (FileNotFoundError, ValueError, TypeError) as err:
        fail(str(err))
    except DeployMismatch as err:
        fail(str(err), CHECK_FAILED)
    typer.echo(f"parameters: {facts['parameters']:,} -> {facts['deployed_parameters']:,}")
    typer.echo(f"largest difference: {facts['max_abs_difference']:.3g} (relative "
               f"{facts['max_relative_difference']:.3g}) on {facts['checked_on']}, in float32; "
               f"predictions changed: {facts['predictions_changed']} of {facts['predictions_compared']}")
    typer.echo(f"batch norms folded: {facts['bn_folded']} of {facts['bn_total']} "
               f"({facts['bn_remaining']} left)")
    typer.echo(f"wrote {out / 'model.keras'} and {out / 'saved_model'}")
