"""tenfold.optimizers: Adafactor and SM3 with sub-linear state, AGC, state accounting."""

from tenfold.optimizers.adafactor import Adafactor
from tenfold.optimizers.agc import AGC
from tenfold.optimizers.sm3 import SM3
from tenfold.optimizers.state import state_bytes

__all__ = ["AGC", "SM3", "Adafactor", "state_bytes"]
