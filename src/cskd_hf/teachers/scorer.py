"""A trained scoring model as the frozen teacher of SKD: its predicted vote distributions are the pseudo-labels."""

import os

import torch

from ..models.cskd import CSKDForAestheticScoring, CSKDImageProcessor
from .views import ViewConverter


class ScorerTeacher(torch.nn.Module):
    """A saved `CSKDForAestheticScoring`, frozen, predicting distributions for the student's augmented view."""

    def __init__(
        self,
        name_or_path: str | os.PathLike,
        student_processor: CSKDImageProcessor,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        self.model = CSKDForAestheticScoring.from_pretrained(name_or_path, dtype=dtype).eval()
        self.model.requires_grad_(False)
        teacher_processor = CSKDImageProcessor.from_model_config(self.model.config)
        self.view = ViewConverter(
            student_processor.image_mean,
            student_processor.image_std,
            teacher_processor.image_mean,
            teacher_processor.image_std,
            self.model.config.image_size,
        )

    @property
    def bin_scores(self) -> list[float]:
        return self.model.config.bin_scores

    def train(self, mode: bool = True):
        # Frozen: dropout stays off even when the trainer calls .train() on everything.
        return super().train(False)

    @torch.no_grad()
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """`(batch, num_bins)` float32 probabilities: the pseudo-labels."""
        teacher_pixels = self.view(pixel_values).to(self.model.dtype)
        return self.model(pixel_values=teacher_pixels).probabilities.float()


__all__ = ["ScorerTeacher"]
