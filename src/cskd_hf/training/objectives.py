"""Phase II's modes as objectives: what each batch holds, and the batch's weighted loss terms.

`phase2.fit` runs any of them with one loop (batch, forward, terms, backward, step, bookkeeping); the terms come from
`cskd_hf.losses`, the one implementation of eqs. 1-5. A new mode is a new objective: the loop does not change.

| objective | batch | terms |
| --- | --- | --- |
| `FineTuning` (the CSKD teacher, NIMA*) | labeled | EMD to the votes (eq. 2) |
| `KnowledgeDistillation` (Table 6's KD) | labeled | + beta * EMD to the teacher (eqs. 3-5) |
| `SemiSupervisedDistillation` (SKD) | labeled + mu * unlabeled | + beta * EMD to the teacher on all images |
| `LabelFreeDistillation` (SKD without labels) | unlabeled | beta * EMD to the teacher |
| `JointAlignment` (Hou et al.'s joint mode) | labeled | + lambda * alignment to each classifier (eq. 1) |
"""

from dataclasses import dataclass, field

import torch
from accelerate import Accelerator
from torch import nn

from ..losses import LossTerms, alignment_loss, distillation_loss, supervised_loss
from ..models.cskd import AestheticScoringOutput
from ..teachers.scorer import ScorerTeacher
from .cache import TeacherCache


@dataclass
class StepBatch:
    """The images of one step: the labeled ones first, with their vote distributions, then the unlabeled ones (with
    the keys that look up their cached targets)."""

    pixel_values: torch.Tensor
    labels: torch.Tensor | None = None
    unlabeled_keys: list[str] = field(default_factory=list)

    @property
    def num_labeled(self) -> int:
        return 0 if self.labels is None else len(self.labels)


class Objective:
    """A phase II mode. `uses_labels` and `uses_unlabeled` say what a batch holds: labeled images, the stream's
    unlabeled images, or both (mu unlabeled images after each labeled batch); `name` is the trackers' project."""

    name = "finetune"
    uses_labels = True
    uses_unlabeled = False

    def trained_modules(self) -> list[nn.Module]:
        """Modules trained with the student and dropped at export (projectors); their parameters join its optimizer."""
        return []

    def prepare(self, accelerator: Accelerator) -> list[nn.Module]:
        """Hand `trained_modules` to Accelerate, once, after the student; returns them as prepared."""
        return []

    def loss_terms(self, batch: StepBatch, student: AestheticScoringOutput) -> LossTerms:
        """`{name: (weight, unweighted term)}` for this batch, given the student's outputs on all of its images."""
        raise NotImplementedError


@dataclass
class FineTuning(Objective):
    """Supervised fine-tuning: the EMD to the human votes (eq. 2)."""

    emd_r: float = 2.0

    def loss_terms(self, batch: StepBatch, student: AestheticScoringOutput) -> LossTerms:
        return {"supervised": (1.0, supervised_loss(student.probabilities, batch.labels, r=self.emd_r))}


@dataclass
class KnowledgeDistillation(Objective):
    """KD, eqs. 3-5 on the labeled images: `L = L_s + beta * L_kd`, the frozen teacher seeing the student's view.

    `cache` holds the teacher's targets for unlabeled images (their centre view), looked up by key instead of
    running the teacher on them; the labeled images keep the live teacher.
    """

    teacher: ScorerTeacher | None
    beta: float = 15.0
    emd_r: float = 2.0
    cache: TeacherCache | None = None
    name = "skd"

    def teacher_targets(self, batch: StepBatch) -> torch.Tensor:
        """The teacher's distributions for every image of the batch (its pseudo-labels)."""
        if self.cache is None:
            return self.teacher(batch.pixel_values)
        looked_up = self.cache.lookup(batch.unlabeled_keys).to(batch.pixel_values.device)
        if not batch.num_labeled:
            return looked_up
        return torch.cat([self.teacher(batch.pixel_values[: batch.num_labeled]), looked_up])

    def loss_terms(self, batch: StepBatch, student: AestheticScoringOutput) -> LossTerms:
        targets = self.teacher_targets(batch)
        terms = {}
        if batch.labels is not None:
            terms["supervised"] = (1.0, supervised_loss(student.probabilities, batch.labels, r=self.emd_r))
        terms["distillation"] = (self.beta, distillation_loss(student.probabilities, targets, r=self.emd_r))
        return terms


class SemiSupervisedDistillation(KnowledgeDistillation):
    """SKD (eq. 5): KD over each labeled batch and the mu * B_s unlabeled images that follow it."""

    uses_unlabeled = True


class LabelFreeDistillation(KnowledgeDistillation):
    """SKD without labels: beta * the EMD to the teacher over batches of the stream alone (e.g. from a converted
    predictor, with no labels at hand)."""

    uses_labels = False
    uses_unlabeled = True


@dataclass
class JointAlignment(FineTuning):
    """Hou et al.'s joint mode: the EMD to the votes plus lambda (`weight`) times the alignment of the student's
    pooled features, through one projector each, to each frozen object classifier's on the same images (eq. 1's
    loss)."""

    teachers: list[nn.Module] = field(default_factory=list)
    projectors: nn.ModuleList | None = None
    weight: float = 1.0

    def trained_modules(self) -> list[nn.Module]:
        return [self.projectors]

    def prepare(self, accelerator: Accelerator) -> list[nn.Module]:
        self.projectors = accelerator.prepare(self.projectors)
        return [self.projectors]

    def loss_terms(self, batch: StepBatch, student: AestheticScoringOutput) -> LossTerms:
        terms = super().loss_terms(batch, student)
        features = student.pooler_output
        teacher_embeds = [teacher(batch.pixel_values) for teacher in self.teachers]
        student_embeds = [projector(features) for projector in self.projectors]
        terms["alignment"] = (self.weight, alignment_loss(teacher_embeds, student_embeds))
        return terms


__all__ = [
    "FineTuning",
    "JointAlignment",
    "KnowledgeDistillation",
    "LabelFreeDistillation",
    "Objective",
    "SemiSupervisedDistillation",
    "StepBatch",
]
