"""Showing a teacher the student's own augmented view, in the teacher's input size and normalisation."""

import torch
import torch.nn.functional as F


class ViewConverter(torch.nn.Module):
    """Re-normalise (and resize) the student's `pixel_values` for a teacher trained with other statistics.

    This is how a frozen teacher sees exactly the crop and flip the student sees (timm's distillation task does the
    same), instead of a second, independently augmented view. `teacher_size=None` keeps the student's size.
    """

    def __init__(self, student_mean, student_std, teacher_mean, teacher_std, teacher_size: int | None):
        super().__init__()
        self.teacher_size = teacher_size
        for name, values in (
            ("student_mean", student_mean),
            ("student_std", student_std),
            ("teacher_mean", teacher_mean),
            ("teacher_std", teacher_std),
        ):
            self.register_buffer(name, torch.tensor(values, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        images = pixel_values.float() * self.student_std + self.student_mean
        if self.teacher_size is not None and images.shape[-2:] != (self.teacher_size, self.teacher_size):
            size = (self.teacher_size, self.teacher_size)
            images = F.interpolate(images, size=size, mode="bicubic", align_corners=False, antialias=True)
        return (images - self.teacher_mean) / self.teacher_std


__all__ = ["ViewConverter"]
