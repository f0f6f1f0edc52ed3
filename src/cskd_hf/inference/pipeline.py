"""The `image-aesthetics` pipeline: `pipeline("image-aesthetics", model=...)` after `cskd_hf.register()` (or once any
of `cskd_hf`'s model names is used)."""

import os
from typing import Any

import torch
from PIL import Image
from transformers import AutoModelForImageClassification, Pipeline
from transformers.image_utils import load_image
from transformers.pipelines import PIPELINE_REGISTRY

from ..data.images import open_image, to_rgb
from .scoring import TorchScorer, fast_scorer

TASK = "image-aesthetics"


class ImageAestheticsPipeline(Pipeline):
    """Predicts the aesthetic score of images with a `CSKDForAestheticScoring` model.

    Call it on a path, URL or PIL image, or a list of them. Each image gives `{"score": mean, "std": standard
    deviation, "distribution": [p_1, ..., p_d]}`, the score on the scale of the model's bins (1..10 for AVA).

    On a list, `batch_size` batches the forward passes and `num_workers` decodes in DataLoader processes meanwhile
    (transformers' own input pipeline); large JPEG files decode at a reduced size that still covers the model's
    resize (`draft=False` decodes them fully). `backend` is `cskd score`'s: by default (`"auto"`) a model on the CPU
    runs as its ONNX graph in ONNX Runtime where that is installed (exported on first use, then cached), else as the
    PyTorch model channels-last under `inference_mode` (`backend="torch"` always).
    """

    _load_processor = False
    _load_image_processor = True
    # transformers would derive a video processor from the image processor's auto_map and ask about remote code.
    _load_video_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def __init__(self, *args, backend: str = "auto", **kwargs):
        super().__init__(*args, **kwargs)
        # By name: with `trust_remote_code=True` the class comes from the model's own copy of our code.
        if type(self.model).__name__ != "CSKDForAestheticScoring":
            raise ValueError(
                f"{self.model.name_or_path or 'the model'} is a {type(self.model).__name__}, not a CSKD aesthetic "
                "scoring model"
            )
        self.scorer = fast_scorer(self.model, backend)

    def get_inference_context(self):
        return torch.inference_mode

    def _sanitize_parameters(self, timeout: float | None = None, draft: bool | None = None, **kwargs):
        preprocess_params = {"timeout": timeout} if timeout is not None else {}
        if draft is not None:
            preprocess_params["draft"] = draft
        return preprocess_params, {}, {}

    def preprocess(self, image: Any, timeout: float | None = None, draft: bool = True) -> dict[str, torch.Tensor]:
        if isinstance(image, (str, os.PathLike)) and not str(image).startswith(("http://", "https://")):
            image = open_image(image, draft_size=self.image_processor.draft_size(draft))
        elif isinstance(image, Image.Image):
            image = to_rgb(image)
        else:
            image = to_rgb(load_image(image, timeout=timeout))
        return self.image_processor(images=image, return_tensors="pt")

    def _forward(self, model_inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        pixel_values = model_inputs["pixel_values"]
        if isinstance(self.scorer, TorchScorer):
            pixel_values = pixel_values.to(self.model.dtype)
        scores = self.scorer(pixel_values)
        return {
            "probabilities": torch.from_numpy(scores.probabilities),
            "mean_score": torch.from_numpy(scores.mean_score),
            "std_score": torch.from_numpy(scores.std_score),
        }

    def postprocess(self, model_outputs) -> dict[str, Any]:
        return {
            "score": model_outputs["mean_score"][0].item(),
            "std": model_outputs["std_score"][0].item(),
            "distribution": model_outputs["probabilities"][0].tolist(),
        }


PIPELINE_REGISTRY.register_pipeline(
    TASK, pipeline_class=ImageAestheticsPipeline, pt_model=AutoModelForImageClassification, type="image"
)

__all__ = ["ImageAestheticsPipeline", "TASK"]
