"""A frozen timm object classifier as a feature-alignment teacher (Hou et al. 2022), and the one place that turns a
`--teacher` value into a teacher, CLIP or classifier.

Teacher values:
- a CLIP checkpoint, Hub id or local folder (`openai/clip-vit-large-patch14`): `ClipTeacher`;
- `timm:ARCH` (timm's pretrained weights, downloaded) or `timm:ARCH@PATH` (a local checkpoint file):
  `ClassifierTeacher`, whose targets are the classifier's pooled features (before its classification layer).
"""

import os

import timm
import torch

from .clip import ClipTeacher
from .views import ViewConverter

TIMM_PREFIX = "timm:"


def parse_timm_teacher(spec: str) -> tuple[str, str | None]:
    """`timm:ARCH[@CHECKPOINT]` → (ARCH, CHECKPOINT or None)."""
    architecture, _, checkpoint = spec[len(TIMM_PREFIX) :].partition("@")
    if not architecture:
        raise ValueError(f"teacher {spec!r}: expected timm:ARCH or timm:ARCH@CHECKPOINT_FILE")
    return architecture, checkpoint or None


class ClassifierTeacher(torch.nn.Module):
    """A timm classifier's pooled features, frozen, on the student's own (augmented) view of each image.

    The view is re-normalised with the classifier's mean and std. Its size is kept, as Hou et al. feed the object
    classifiers and the aesthetics model the same input, unless the architecture only takes a fixed input size (ViTs),
    which it is then resized to.
    """

    def __init__(
        self,
        spec: str,
        student_mean: list[float] | None = None,
        student_std: list[float] | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        architecture, checkpoint = parse_timm_teacher(spec)
        if checkpoint is not None and not os.path.isfile(checkpoint):
            raise FileNotFoundError(f"teacher {spec!r}: no checkpoint file {checkpoint}")
        overlay = {"file": checkpoint} if checkpoint else None
        model = timm.create_model(architecture, pretrained=True, num_classes=0, pretrained_cfg_overlay=overlay)
        self.model = model.to(dtype).eval().requires_grad_(False)
        data_config = timm.data.resolve_data_config({}, model=self.model)
        fixed_size = getattr(self.model, "pretrained_cfg", {}).get("fixed_input_size", False)
        self.view = ViewConverter(
            student_mean or [0.0] * 3,
            student_std or [1.0] * 3,
            list(data_config["mean"]),
            list(data_config["std"]),
            data_config["input_size"][-1] if fixed_size else None,
        )

    def train(self, mode: bool = True):
        return super().train(False)  # frozen

    @property
    def embedding_size(self) -> int:
        return self.model.num_features

    @torch.no_grad()
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """`(batch, num_features)` float32 targets for the student's `pixel_values`."""
        return self.model(self.view(pixel_values).to(next(self.model.parameters()).dtype)).float()


def load_teacher(
    spec: str,
    target: str = "cls",
    student_mean: list[float] | None = None,
    student_std: list[float] | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.nn.Module:
    """The teacher a `--teacher` value names (`target` applies to CLIP teachers)."""
    if spec.startswith(TIMM_PREFIX):
        return ClassifierTeacher(spec, student_mean, student_std, dtype)
    return ClipTeacher(spec, target, student_mean, student_std, dtype)


def teacher_embedding_size(spec: str, target: str = "cls") -> int:
    """The size of a teacher's targets, without loading its weights."""
    if spec.startswith(TIMM_PREFIX):
        architecture, _ = parse_timm_teacher(spec)
        with torch.device("meta"):  # the size only: no memory, no weights
            return timm.create_model(architecture, pretrained=False, num_classes=0).num_features
    return ClipTeacher.embedding_size_of(spec, target)


__all__ = ["ClassifierTeacher", "load_teacher", "parse_timm_teacher", "teacher_embedding_size"]
