"""tenfold.callbacks — filled in by its technique's issue."""

__all__: list[str] = []

from tenfold.callbacks.drw import DeferredReweighting  # noqa: E402

__all__ += ["DeferredReweighting"]

from tenfold.callbacks.cycle_momentum import CycleMomentum  # noqa: E402
from tenfold.callbacks.lr_finder import LRFinder, LRFinderResult  # noqa: E402

__all__ += ["CycleMomentum", "LRFinder", "LRFinderResult"]
