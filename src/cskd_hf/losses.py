"""Loss functions of CSKD, as pure functions on tensors.

The model folder owns the maths it needs at inference and in its `forward` (it is copied to the Hub on its own);
this module re-exports it so training code has one place to import losses from.
"""

import torch

from .models.cskd.modeling_cskd import cosine_alignment_loss, earth_movers_distance


def skd_loss(
    student_probabilities: torch.Tensor,
    labels: torch.Tensor,
    teacher_probabilities: torch.Tensor,
    beta: float = 15.0,
    r: float = 2.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The student objective of SKD, eqs. 3-5: `L = L_s + beta * L_kd`.

    Args:
        student_probabilities: `(B_s + mu * B_s, d)` the student's distributions, the labeled images first.
        labels: `(B_s, d)` the human vote distributions of the labeled images.
        teacher_probabilities: `(B_s + mu * B_s, d)` the teacher's distributions (pseudo-labels) for the same images.

    Returns:
        The total loss, `L_s` (mean EMD to the labels over the B_s labeled images) and `L_kd` (mean EMD to the
        teacher over all images of the batch).
    """
    num_labeled = labels.shape[0]
    supervised = earth_movers_distance(student_probabilities[:num_labeled], labels, r=r).mean()
    distillation = earth_movers_distance(student_probabilities, teacher_probabilities, r=r).mean()
    return supervised + beta * distillation, supervised, distillation


__all__ = ["cosine_alignment_loss", "earth_movers_distance", "skd_loss"]
