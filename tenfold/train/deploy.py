"""Stage "deploy": fuse a trained model, check it against the original, export it.

The one deploy of tenfold, used by the trainer (``deploy/`` of a run directory) and by
``tenfold deploy``: :func:`tenfold.reparam.deploy` folds every ACBlock / RepVGGBlock and
every conv → BN pair; the fused model is compared on check inputs with the original
evaluated in float32 (:func:`tenfold.reparam.check`: a fusion is exact there, while a
``mixed_bfloat16`` model's own predictions would measure bfloat16 rounding); then
``OUT/model.keras``, ``OUT/saved_model`` (TensorFlow backend) and ``OUT/deploy.json`` (the
facts: parameter counts, largest differences, predictions changed, batch norms folded) are
written. A wrong fusion cannot pass unnoticed: its difference is in the facts, and with a ``tolerance``
nothing is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np

from tenfold import reparam
from tenfold.train.build import Run
from tenfold.train.data import eval_split
from tenfold.train.files import write_json_atomic

FACTS_FILE = "deploy.json"


class DeployMismatch(RuntimeError):
    """The fused model differs from the original by more than the tolerance."""


def compare(model: keras.Model, fused: keras.Model, x: np.ndarray) -> dict[str, Any]:
    """:func:`tenfold.reparam.check` of ``fused`` against ``model`` evaluated in float32 on ``x``.

    A fusion is exact in float32, so the original is rebuilt under the float32 policy with
    its weights (a ``mixed_bfloat16`` model's own predictions would measure bfloat16
    rounding, not the fusion). Returns the largest absolute and relative difference, the
    predictions changed out of those compared, their agreement, and the batch-norm layers
    of the original, folded and left.
    """
    if not len(x):
        facts = {"max_abs_difference": 0.0, "max_relative_difference": 0.0,
                 "predictions_changed": 0, "predictions_compared": 0,
                 "bn_total": reparam.count_norms(model), "bn_remaining": reparam.count_norms(fused)}
        facts["bn_folded"] = max(facts["bn_total"] - facts["bn_remaining"], 0)
    else:
        facts = reparam.check(model, fused, x)
    compared = facts["predictions_compared"]
    agreement = 1.0 - facts["predictions_changed"] / compared if compared else 1.0
    return {**facts, "prediction_agreement": agreement, "compared_in": "float32"}


def deploy(
    model: keras.Model,
    x_check: np.ndarray,
    out: Path,
    *,
    checked_on: str,
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
        facts = {"fused": True, **compare(model, fused, x_check),
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
            f"{100 * facts['prediction_agreement']:.1f}% ({facts['predictions_changed']} of "
            f"{facts['predictions_compared']} changed; compared in float32); batch norms folded: "
            f"{facts['bn_folded']} of {facts['bn_total']} ({facts['bn_remaining']} left)."
        ]
    if keras.backend.backend() != "tensorflow":
        lines.append("SavedModel export skipped: it needs the TensorFlow backend.")
    return lines


def deploy_trained(run: Run) -> tuple[dict[str, Any], list[str]]:
    """``model.keras`` of the run, and ``deploy/`` with the fused model checked in float32
    against the trained model on the test split."""
    run.model.save(run.out / "model.keras")
    if run.data.files is not None:  # a streamed folder: its first test batch
        x = next(iter(eval_split(run.recipe.data, run.data, "test")), (np.zeros((0, *run.data.input_shape)),))[0]
        x = np.asarray(x, "float32")
    else:
        x = run.data.splits.x_test
    facts = deploy(run.model, x, run.out / "deploy", checked_on=f"test split ({len(x)} examples)",
                   fallback_unfused=True)
    return facts, describe(facts)
