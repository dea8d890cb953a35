"""Stage "deploy": fuse a trained model, check it against the original, export it.

The one deploy of tenfold, used by the trainer (``deploy/`` of a run directory) and by
``tenfold deploy``: :func:`tenfold.reparam.deploy` folds every ACBlock / RepVGGBlock and
every conv → BN pair; the fused and the original logits are compared on check inputs; then
``OUT/model.keras``, ``OUT/saved_model`` (TensorFlow backend) and ``OUT/deploy.json`` (the
facts: parameter counts, largest differences, prediction agreement) are written. A wrong
fusion cannot pass unnoticed: its difference is in the facts, and with a ``tolerance``
nothing is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np

from tenfold import reparam
from tenfold.train.build import Run
from tenfold.train.evaluate import predict_logits
from tenfold.train.files import write_json_atomic

FACTS_FILE = "deploy.json"


class DeployMismatch(RuntimeError):
    """The fused model differs from the original by more than the tolerance."""


def compare(
    model: keras.Model, fused: keras.Model, x: np.ndarray, *, logits: np.ndarray | None = None
) -> dict[str, Any]:
    """Largest absolute and relative output difference and prediction agreement on ``x``.

    ``logits``: ``model``'s outputs on ``x`` when already predicted.
    """
    reference = predict_logits(model, x) if logits is None else np.asarray(logits, dtype="float64")
    candidate = predict_logits(fused, x)
    if not len(reference):
        return {"max_abs_difference": 0.0, "max_relative_difference": 0.0, "prediction_agreement": 1.0}
    diff = float(np.max(np.abs(reference - candidate)))
    scale = float(np.max(np.abs(reference)))
    agree = np.argmax(reference, -1) == np.argmax(candidate, -1)
    return {
        "max_abs_difference": diff,
        "max_relative_difference": diff / scale if scale > 0 else diff,
        "prediction_agreement": float(np.mean(agree)),
    }


def deploy(
    model: keras.Model,
    x_check: np.ndarray,
    out: Path,
    *,
    checked_on: str,
    logits: np.ndarray | None = None,
    tolerance: float | None = None,
    fallback_unfused: bool = False,
    source: str | None = None,
) -> dict[str, Any]:
    """Fuse ``model`` → compare on ``x_check`` → save into ``out``; returns the facts.

    Args:
        model: the trained model.
        x_check: inputs the fused and original outputs are compared on.
        out: output folder (created).
        checked_on: what ``x_check`` is, for the facts (e.g. ``"test split (450 examples)"``).
        logits: ``model``'s outputs on ``x_check`` if already predicted (not predicted again).
        tolerance: largest relative difference accepted; above it :class:`DeployMismatch`
            is raised and nothing is written. None: no limit (the facts record it).
        fallback_unfused: a model ``reparam.deploy`` cannot fuse (e.g. subclassed) is
            exported as it is instead of raising.
        source: the model file, recorded in the facts as ``model``.
    """
    try:
        fused = reparam.deploy(model)
    except (TypeError, ValueError) as err:
        if not fallback_unfused:
            raise
        fused, facts = model, {"fused": False, "reason": str(err)}
    else:
        facts = {"fused": True, **compare(model, fused, x_check, logits=logits),
                 "parameters": reparam.parameter_count(model),
                 "deployed_parameters": reparam.parameter_count(fused),
                 "checked_on": checked_on}
        if tolerance is not None and not facts["max_relative_difference"] <= tolerance:
            raise DeployMismatch(
                f"the fused model differs from the original by {facts['max_relative_difference']:.3g} "
                f"(relative), above --tolerance {tolerance:g}; nothing written."
            )
    if source is not None:
        facts = {"model": source, **facts}
    out.mkdir(parents=True, exist_ok=True)
    fused.save(out / "model.keras")
    if keras.backend.backend() == "tensorflow":
        fused.export(str(out / "saved_model"), format="tf_saved_model", verbose=False)
    write_json_atomic(out / FACTS_FILE, facts)
    return facts


def describe(facts: dict[str, Any]) -> list[str]:
    """The report's lines about the deploy step."""
    if not facts.get("fused"):
        lines = [f"Deploy: exported unfused ({facts.get('reason', 'no fused form')})."]
    else:
        lines = [
            f"Deploy: fused model in `deploy/` ({facts['parameters']:,} → "
            f"{facts['deployed_parameters']:,} parameters); largest difference to the trained "
            f"model on the {facts['checked_on']}: {facts['max_abs_difference']:.3g} "
            f"(relative {facts['max_relative_difference']:.3g}), predictions agree on "
            f"{100 * facts['prediction_agreement']:.1f}%."
        ]
    if keras.backend.backend() != "tensorflow":
        lines.append("SavedModel export skipped: it needs the TensorFlow backend.")
    return lines


def deploy_trained(run: Run, test_logits: np.ndarray | None) -> tuple[dict[str, Any], list[str]]:
    """``model.keras`` of the run, and ``deploy/`` with the fused model checked on the test
    split (``test_logits``: the trained model's, from evaluation; None: predicted here)."""
    run.model.save(run.out / "model.keras")
    x = run.data.splits.x_test
    facts = deploy(run.model, x, run.out / "deploy", checked_on=f"test split ({len(x)} examples)",
                   logits=test_logits, fallback_unfused=True)
    return facts, describe(facts)
