"""Gradient recomputation: a wrapper layer, a segmenting policy, and a memory probe."""

from tenfold.remat.apply import Plan, apply, plan, segments_for
from tenfold.remat.memory import peak_memory
from tenfold.remat.recompute import Recompute

__all__ = ["Plan", "Recompute", "apply", "peak_memory", "plan", "segments_for"]
