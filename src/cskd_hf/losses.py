"""Loss functions of CSKD, as pure functions on tensors: the one implementation of eqs. 1-5 that the trainers and the
tests share.

The model folder owns the maths it needs at inference and in its `forward` (it is copied to the Hub on its own): the
EMD of eq. 2 and the alignment loss of eq. 1. This module re-exports it, and builds phase II's terms from it.
"""

import torch

from .models.cskd.modeling_cskd import alignment_loss, cosine_alignment_loss, earth_movers_distance

LossTerms = dict[str, tuple[float, torch.Tensor]]
"""A batch's loss terms by name: `(weight, unweighted term)`; the loss is their weighted sum (`total_loss`)."""


def supervised_loss(student_probabilities: torch.Tensor, labels: torch.Tensor, r: float = 2.0) -> torch.Tensor:
    """`L_s` (eqs. 2-3): the mean EMD of the labeled images' predicted distributions to their human votes.

    Args:
        student_probabilities: `(B, d)` the student's distributions, the `len(labels)` labeled images first.
        labels: `(B_s, d)` the vote distributions of the labeled images.
    """
    return earth_movers_distance(student_probabilities[: labels.shape[0]], labels, r=r).mean()


def distillation_loss(
    student_probabilities: torch.Tensor, teacher_probabilities: torch.Tensor, r: float = 2.0
) -> torch.Tensor:
    """`L_kd` (eq. 4): the mean EMD of the student's distributions to the teacher's (its pseudo-labels), over every
    image of the batch."""
    return earth_movers_distance(student_probabilities, teacher_probabilities, r=r).mean()


def total_loss(terms: LossTerms) -> torch.Tensor:
    """The weighted sum of a batch's loss terms, in their order."""
    return sum(weight * term for weight, term in terms.values())


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
    supervised = supervised_loss(student_probabilities, labels, r=r)
    distillation = distillation_loss(student_probabilities, teacher_probabilities, r=r)
    return (
        total_loss({"supervised": (1.0, supervised), "distillation": (beta, distillation)}),
        supervised,
        distillation,
    )


__all__ = [
    "LossTerms",
    "alignment_loss",
    "cosine_alignment_loss",
    "distillation_loss",
    "earth_movers_distance",
    "skd_loss",
    "supervised_loss",
    "total_loss",
]
