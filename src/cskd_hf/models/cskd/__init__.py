"""CSKD models, registered with the transformers Auto classes on import."""

from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageClassification

from .configuration_cskd import CSKDConfig
from .image_processing_cskd import CSKDImageProcessor
from .modeling_cskd import (
    AestheticScoringOutput,
    CSKDForAestheticScoring,
    CSKDForFeatureAlignment,
    CSKDModel,
    CSKDModelOutput,
    CSKDPreTrainedModel,
    FeatureAlignmentOutput,
    MismatchedWeightsError,
    cosine_alignment_loss,
    distribution_mean_std,
    earth_movers_distance,
)

AutoConfig.register(CSKDConfig.model_type, CSKDConfig, exist_ok=True)
AutoModel.register(CSKDConfig, CSKDModel, exist_ok=True)
# A distribution over score bins is classification-shaped: this is the Auto class of the scoring model.
AutoModelForImageClassification.register(CSKDConfig, CSKDForAestheticScoring, exist_ok=True)
# One class serves both backends: it takes PIL images and transforms them with torchvision.
AutoImageProcessor.register(
    CSKDConfig, image_processor_classes={"pil": CSKDImageProcessor, "torchvision": CSKDImageProcessor}, exist_ok=True
)

# Saving then copies this folder's code next to the weights, so `trust_remote_code=True` works without cskd_hf.
CSKDConfig.register_for_auto_class()
CSKDModel.register_for_auto_class("AutoModel")
CSKDForAestheticScoring.register_for_auto_class("AutoModelForImageClassification")
CSKDForFeatureAlignment.register_for_auto_class("AutoModel")
CSKDImageProcessor.register_for_auto_class("AutoImageProcessor")

__all__ = [
    "AestheticScoringOutput",
    "CSKDConfig",
    "CSKDForAestheticScoring",
    "CSKDForFeatureAlignment",
    "CSKDImageProcessor",
    "CSKDModel",
    "CSKDModelOutput",
    "CSKDPreTrainedModel",
    "FeatureAlignmentOutput",
    "MismatchedWeightsError",
    "cosine_alignment_loss",
    "distribution_mean_std",
    "earth_movers_distance",
]
