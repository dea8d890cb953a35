"""Gradient recomputation: a wrapper layer, a segmenting policy, and a memory probe."""

from tenfold.remat.apply import apply, segments_for
from tenfold.remat.memory import peak_memory
from tenfold.remat.recompute import Recompute

__all__ = ["Recompute", "apply", "peak_memory", "segments_for"]
