"""The trainer's deploy step: fuse the trained model and check it against the original.

``tenfold.reparam.deploy`` folds every ACBlock / RepVGGBlock and every conv → BN pair; the
fused model is what ``deploy/`` holds (``model.keras`` and the SavedModel). The largest
difference between fused and unfused logits on the test split goes into ``metrics.json``
(``run.deploy``), so a wrong fusion cannot pass unnoticed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np

from tenfold import reparam


def fuse(model: keras.Model, x_check: np.ndarray, out: Path) -> tuple[keras.Model, dict[str, Any]]:
    """Deploy ``model``, save ``out/model.keras``, return the model to export and the facts."""
    try:
        fused = reparam.deploy(model)
    except (TypeError, ValueError) as err:  # e.g. a subclassed model: export it as it is
        return model, {"fused": False, "reason": str(err)}
    logits = np.asarray(model.predict(x_check, batch_size=256, verbose=0), "float64")
    fused_logits = np.asarray(fused.predict(x_check, batch_size=256, verbose=0), "float64")
    diff = float(np.max(np.abs(logits - fused_logits))) if len(logits) else 0.0
    scale = float(np.max(np.abs(logits))) if len(logits) else 0.0
    out.mkdir(parents=True, exist_ok=True)
    fused.save(out / "model.keras")
    facts = {
        "fused": True,
        "max_abs_difference": diff,
        "max_relative_difference": diff / scale if scale > 0 else diff,
        "prediction_agreement": float(np.mean(np.argmax(logits, -1) == np.argmax(fused_logits, -1)))
        if len(logits) else 1.0,
        "parameters": reparam.parameter_count(model),
        "deployed_parameters": reparam.parameter_count(fused),
        "checked_on": f"test split ({len(logits)} examples)",
    }
    return fused, facts


def describe(facts: dict[str, Any]) -> str:
    """One line for the report about the deploy step."""
    if not facts.get("fused"):
        return f"Deploy: exported unfused ({facts.get('reason', 'no fused form')})."
    return (
        f"Deploy: fused model in `deploy/` ({facts['parameters']:,} → "
        f"{facts['deployed_parameters']:,} parameters); largest difference to the trained "
        f"model on the {facts['checked_on']}: {facts['max_abs_difference']:.3g} "
        f"(relative {facts['max_relative_difference']:.3g}), predictions agree on "
        f"{100 * facts['prediction_agreement']:.1f}%."
    )
