"""``tenfold deploy MODEL.keras -o OUT``: fuse for inference, check, export.

Loads a ``.keras`` model (``safe_mode`` on), fuses it with :func:`tenfold.reparam.deploy`
(ACBlock / RepVGGBlock branches, conv → BN pairs), compares fused and original outputs on
sample inputs, then writes ``OUT/model.keras`` and ``OUT/saved_model`` and prints the
parameter counts and the largest difference. Exits with status 1 when the relative
difference is above ``--tolerance`` (nothing is written then), 2 on bad input.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer

from tenfold.cli.app import app, fail


def sample_inputs(model: Any, *, samples: int, data: str | None, seed: int) -> np.ndarray:
    """Check inputs: the test split of ``data`` (a tenfold data source) or Gaussian noise."""
    if data is not None:
        from tenfold.data import load

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


def deploy_command(
    model_path: Path,
    out: Path,
    *,
    samples: int = 64,
    data: str | None = None,
    tolerance: float = 1e-4,
    seed: int = 0,
    log: Any = print,
) -> dict[str, Any]:
    """Fuse ``model_path`` into ``out``; returns the facts printed and saved as ``deploy.json``."""
    import keras

    import tenfold  # noqa: F401  (registers the tenfold classes for loading)
    from tenfold import reparam

    if not model_path.is_file():
        raise FileNotFoundError(f"model file {str(model_path)!r} does not exist.")
    if model_path.suffix != ".keras":
        raise ValueError(f"MODEL must be a .keras file, received {str(model_path)!r}.")
    if samples < 1:
        raise ValueError(f"--samples must be >= 1, received {samples}.")
    model = keras.saving.load_model(model_path, safe_mode=True)
    fused = reparam.deploy(model)
    x = sample_inputs(model, samples=samples, data=data, seed=seed)
    diff = reparam.max_difference(model, fused, x)
    scale = float(np.max(np.abs(np.asarray(model.predict(x, verbose=0)))))
    relative = diff / scale if scale > 0 else diff
    facts = {
        "model": str(model_path),
        "parameters": reparam.parameter_count(model),
        "deployed_parameters": reparam.parameter_count(fused),
        "max_abs_difference": diff,
        "max_relative_difference": relative,
        "checked_on": f"{len(x)} {'test examples of ' + data if data else 'Gaussian samples'}",
    }
    log(f"parameters: {facts['parameters']:,} -> {facts['deployed_parameters']:,}")
    log(f"largest difference: {diff:.3g} (relative {relative:.3g}) on {facts['checked_on']}")
    if not relative <= tolerance:
        raise RuntimeError(
            f"the fused model differs from the original by {relative:.3g} (relative), above "
            f"--tolerance {tolerance:g}; nothing written."
        )
    out.mkdir(parents=True, exist_ok=True)
    fused.save(out / "model.keras")
    if keras.backend.backend() == "tensorflow":
        fused.export(str(out / "saved_model"), format="tf_saved_model", verbose=False)
    (out / "deploy.json").write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")
    log(f"wrote {out / 'model.keras'} and {out / 'saved_model'}")
    return facts


@app.command("deploy")
def deploy_cli(
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
        deploy_command(model, out, samples=samples, data=data, tolerance=tolerance, log=typer.echo)
    except (FileNotFoundError, ValueError, TypeError) as err:
        fail(str(err))
    except RuntimeError as err:
        fail(str(err), code=1)
