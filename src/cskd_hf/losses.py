"""Loss functions of CSKD, as pure functions on tensors.

The model folder owns the maths it needs at inference and in its `forward` (it is copied to the Hub on its own);
this module re-exports it so training code has one place to import losses from.
"""

from .models.cskd.modeling_cskd import cosine_alignment_loss, earth_movers_distance

__all__ = ["cosine_alignment_loss", "earth_movers_distance"]
