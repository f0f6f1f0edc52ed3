"""cskd-hf: image aesthetics assessment with CLIP-based semi-supervised knowledge distillation, the Hugging Face way.

Importing the package registers the CSKD models with the transformers Auto classes and the `image-aesthetics`
pipeline.
"""

from .inference.pipeline import ImageAestheticsPipeline
from .models.cskd import (
    CSKDConfig,
    CSKDForAestheticScoring,
    CSKDForFeatureAlignment,
    CSKDImageProcessor,
    CSKDModel,
)
from .zoo import list_models

__version__ = "0.1.0"

__all__ = [
    "CSKDConfig",
    "CSKDForAestheticScoring",
    "CSKDForFeatureAlignment",
    "CSKDImageProcessor",
    "CSKDModel",
    "ImageAestheticsPipeline",
    "__version__",
    "list_models",
]
