"""A frozen CLIP image encoder as the feature-alignment teacher of phase I."""

import logging
import os

import torch
from transformers import AutoConfig, AutoImageProcessor, CLIPConfig, CLIPVisionConfig, CLIPVisionModelWithProjection
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from .views import ViewConverter

logger = logging.getLogger(__name__)

TARGETS = ("cls", "projected")


class ClipTeacher(torch.nn.Module):
    """CLIP's image tower, frozen, embedding the student's own (augmented) view of each image.

    The student's `pixel_values` are un-normalised with the student's mean and std, resized to CLIP's input size and
    normalised with CLIP's statistics, so the teacher sees exactly the crop and flip the student sees, as in timm's
    distillation task.

    Args:
        name_or_path: any CLIP checkpoint (`openai/clip-vit-large-patch14` or a local folder).
        target: `"cls"`, the CLS token after the final layer norm (the CSKD paper's target; CLIP's hidden size), or
            `"projected"`, the image embedding in CLIP's joint space (its projection size).
        student_mean, student_std: the normalisation of the student's `pixel_values`.
    """

    def __init__(
        self,
        name_or_path: str | os.PathLike,
        target: str = "cls",
        student_mean: list[float] | None = None,
        student_std: list[float] | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        self.target = target
        config = vision_config(name_or_path)
        self.model = CLIPVisionModelWithProjection.from_pretrained(name_or_path, config=config, dtype=dtype).eval()
        self.model.requires_grad_(False)
        mean, std, image_size = _clip_preprocessing(name_or_path, self.model.config.image_size)
        self.view = ViewConverter(student_mean or [0.0] * 3, student_std or [1.0] * 3, mean, std, image_size)

    def train(self, mode: bool = True):
        return super().train(False)  # frozen

    @property
    def embedding_size(self) -> int:
        return _embedding_size(self.model.config, self.target)

    @staticmethod
    def embedding_size_of(name_or_path: str | os.PathLike, target: str = "cls") -> int:
        """The size of the targets a CLIP checkpoint gives, read from its config alone."""
        return _embedding_size(vision_config(name_or_path), target)

    @torch.no_grad()
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """`(batch, embedding_size)` float32 targets for the student's `pixel_values`."""
        outputs = self.model(pixel_values=self.view(pixel_values).to(self.model.dtype))
        embeddings = outputs.last_hidden_state[:, 0] if self.target == "cls" else outputs.image_embeds
        if self.target == "cls":
            # The pooled CLS token: CLIP applies its final layer norm before the projection.
            embeddings = self.model.vision_model.post_layernorm(embeddings)
        return embeddings.float()


def vision_config(name_or_path: str | os.PathLike) -> CLIPVisionConfig:
    """The image tower's config of a CLIP checkpoint, with the projection size that a full CLIP config keeps at its
    top level (a vision config read out of it would otherwise fall back to the default 512)."""
    config = AutoConfig.from_pretrained(name_or_path)
    if isinstance(config, CLIPConfig):
        vision = config.vision_config
        vision.projection_dim = config.projection_dim
        return vision
    return config


def _embedding_size(config: CLIPVisionConfig, target: str) -> int:
    return config.hidden_size if target == "cls" else config.projection_dim


def _clip_preprocessing(name_or_path, default_size: int) -> tuple[list[float], list[float], int]:
    """CLIP's normalisation and input size from its image processor, or the OpenAI defaults without one."""
    try:
        processor = AutoImageProcessor.from_pretrained(name_or_path)
    except (OSError, ValueError):
        logger.warning(f"{name_or_path} has no image processor: using CLIP's default normalisation")
        return list(OPENAI_CLIP_MEAN), list(OPENAI_CLIP_STD), default_size
    crop = getattr(processor, "crop_size", None) or {}
    size = crop.get("height", default_size) if isinstance(crop, dict) else default_size
    return list(processor.image_mean), list(processor.image_std), size


__all__ = ["ClipTeacher"]
