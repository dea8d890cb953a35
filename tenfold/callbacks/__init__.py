"""tenfold.callbacks: Keras callbacks of the techniques.

``DeferredReweighting`` switches a long-tail loss to class-balanced weights late in
training (LDAM-DRW); ``CycleMomentum`` moves the optimizer's momentum against a cyclical or
1cycle learning rate; ``LRFinder`` runs the learning-rate range test (see also
``tenfold.lr_find``) and leaves an ``LRFinderResult``.
"""

from tenfold.callbacks.cycle_momentum import CycleMomentum
from tenfold.callbacks.drw import DeferredReweighting
from tenfold.callbacks.lr_finder import LRFinder, LRFinderResult

__all__ = ["CycleMomentum", "DeferredReweighting", "LRFinder", "LRFinderResult"]
