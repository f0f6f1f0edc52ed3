"""`cskd_hf.training.objectives`: Phase II's objectives; each mode's terms are the losses' own functions."""

import torch

from cskd_hf import losses
from cskd_hf.models.cskd import AestheticScoringOutput
from cskd_hf.training.objectives import (
    FineTuning,
    JointAlignment,
    KnowledgeDistillation,
    LabelFreeDistillation,
    SemiSupervisedDistillation,
    StepBatch,
)


def distributions(rows: int, seed: int) -> torch.Tensor:
    return torch.rand(rows, 10, generator=torch.Generator().manual_seed(seed)).softmax(-1)


class FixedTeacher(torch.nn.Module):
    """A stand-in for a frozen scorer: the same distributions whatever the images."""

    def __init__(self, targets: torch.Tensor):
        super().__init__()
        self.targets = targets

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.targets[: len(pixel_values)]


class FixedCache:
    def __init__(self, targets: dict[str, torch.Tensor]):
        self.targets = targets

    def lookup(self, keys: list[str]) -> torch.Tensor:
        return torch.stack([self.targets[key] for key in keys])


def test_semi_supervised_distillation_terms_are_eqs_3_to_5():
    student, teacher, labels = distributions(8, 0), distributions(8, 1), distributions(2, 2)
    batch = StepBatch(torch.zeros(8, 3, 4, 4), labels, [f"u{i}" for i in range(6)])
    objective = SemiSupervisedDistillation(teacher=FixedTeacher(teacher), beta=15.0)
    terms = objective.loss_terms(batch, AestheticScoringOutput(probabilities=student))
    expected_total, expected_supervised, expected_distillation = losses.skd_loss(student, labels, teacher, beta=15.0)
    assert list(terms) == ["supervised", "distillation"] and terms["distillation"][0] == 15.0
    assert torch.equal(terms["supervised"][1], expected_supervised)
    assert torch.equal(terms["distillation"][1], expected_distillation)
    assert torch.equal(losses.total_loss(terms), expected_total)
    assert objective.uses_labels and objective.uses_unlabeled and objective.name == "skd"


def test_cached_targets_replace_the_teacher_on_the_unlabeled_images_only():
    live, labels = distributions(5, 1), distributions(2, 2)
    cached = {f"u{i}": row for i, row in enumerate(distributions(3, 3))}
    batch = StepBatch(torch.zeros(5, 3, 4, 4), labels, ["u0", "u1", "u2"])
    objective = SemiSupervisedDistillation(teacher=FixedTeacher(live), beta=2.0, cache=FixedCache(cached))
    targets = objective.teacher_targets(batch)
    assert torch.equal(targets[:2], live[:2]) and torch.equal(targets[2:], torch.stack(list(cached.values())))
    no_labels = LabelFreeDistillation(teacher=None, beta=2.0, cache=FixedCache(cached))
    terms = no_labels.loss_terms(StepBatch(torch.zeros(3, 3, 4, 4), None, ["u2", "u0", "u1"]), student_of(3))
    assert list(terms) == ["distillation"] and terms["distillation"][0] == 2.0  # beta weighs it as in eq. 3
    assert not no_labels.uses_labels and no_labels.uses_unlabeled


def student_of(rows: int) -> AestheticScoringOutput:
    return AestheticScoringOutput(probabilities=distributions(rows, 9))


def test_fine_tuning_kd_and_joint_alignment_terms():
    student, labels = student_of(4), distributions(4, 2)
    batch = StepBatch(torch.zeros(4, 3, 4, 4), labels)
    assert list(FineTuning().loss_terms(batch, student)) == ["supervised"]
    kd = KnowledgeDistillation(teacher=FixedTeacher(distributions(4, 1)), beta=3.0)
    assert list(kd.loss_terms(batch, student)) == ["supervised", "distillation"] and not kd.uses_unlabeled

    features = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    classifier = torch.nn.Linear(4 * 4 * 3, 5)
    projector = torch.nn.Linear(6, 5)
    joint = JointAlignment(
        teachers=[lambda pixels: classifier(pixels.flatten(1))],
        projectors=torch.nn.ModuleList([projector]),
        weight=0.5,
    )
    terms = joint.loss_terms(
        batch, AestheticScoringOutput(probabilities=student.probabilities, pooler_output=features)
    )
    assert list(terms) == ["supervised", "alignment"] and terms["alignment"][0] == 0.5
    expected = losses.cosine_alignment_loss(classifier(batch.pixel_values.flatten(1)), projector(features)).mean()
    torch.testing.assert_close(terms["alignment"][1], expected)
    assert joint.trained_modules() == [joint.projectors]
