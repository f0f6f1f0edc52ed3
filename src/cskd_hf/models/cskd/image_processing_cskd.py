"""Image processor of CSKD models: the paper's train and eval transforms, normalised as the timm backbone expects."""

import timm
import torch
from PIL import Image
from torchvision.transforms import v2
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature
from transformers.image_transforms import to_pil_image
from transformers.image_utils import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    ImageInput,
    make_flat_list_of_images,
)

from .configuration_cskd import CSKDConfig

# The paper resizes to 256x256 and crops 224x224; other input sizes keep that ratio.
RESIZE_TO_CROP_RATIO = 256 / 224

INTERPOLATIONS = {
    "nearest": v2.InterpolationMode.NEAREST,
    "bilinear": v2.InterpolationMode.BILINEAR,
    "bicubic": v2.InterpolationMode.BICUBIC,
}


class CSKDImageProcessor(BaseImageProcessor):
    r"""
    Resizes to a `resize_size` square (the paper's 256x256, aspect ratio not kept), then crops `image_size`: a centre
    crop for evaluation, a random crop and a horizontal flip (p=0.5) for training; scales to [0, 1] and normalises.

    Args:
        image_size: side of the model input (224 in the paper).
        resize_size: side of the square the image is resized to before cropping; defaults to
            `round(image_size * 256 / 224)`.
        image_mean: per-channel mean, from the backbone's timm pretrained config.
        image_std: per-channel std, from the backbone's timm pretrained config.
        interpolation: `"bicubic"`, `"bilinear"` or `"nearest"`.
    """

    model_input_names = ["pixel_values"]

    def __init__(
        self,
        image_size: int = 224,
        resize_size: int | None = None,
        image_mean: list[float] | None = None,
        image_std: list[float] | None = None,
        interpolation: str = "bicubic",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if image_size <= 0:
            raise ValueError(f"`image_size` must be positive, got {image_size}")
        resize_size = resize_size or round(image_size * RESIZE_TO_CROP_RATIO)
        if resize_size < image_size:
            raise ValueError(f"`resize_size` ({resize_size}) must be at least `image_size` ({image_size})")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"`interpolation` must be one of {sorted(INTERPOLATIONS)}, got {interpolation!r}")
        self.image_size = image_size
        self.resize_size = resize_size
        self.image_mean = list(image_mean if image_mean is not None else IMAGENET_DEFAULT_MEAN)
        self.image_std = list(image_std if image_std is not None else IMAGENET_DEFAULT_STD)
        if len(self.image_mean) != 3 or len(self.image_std) != 3:
            raise ValueError("`image_mean` and `image_std` need one value per RGB channel")
        self.interpolation = interpolation

    @classmethod
    def from_model_config(cls, config: CSKDConfig, **kwargs) -> "CSKDImageProcessor":
        """The processor for a model config: its input size and its timm backbone's normalisation."""
        defaults = {"image_size": config.image_size}
        if config.backbone_type == "clip":
            defaults |= {"image_mean": list(OPENAI_CLIP_MEAN), "image_std": list(OPENAI_CLIP_STD)}
            return cls(**{**defaults, "interpolation": "bicubic", **kwargs})
        pretrained_cfg = timm.get_pretrained_cfg(config.architecture)
        if pretrained_cfg is not None:
            defaults["image_mean"] = list(pretrained_cfg.mean)
            defaults["image_std"] = list(pretrained_cfg.std)
            if pretrained_cfg.interpolation in INTERPOLATIONS:
                defaults["interpolation"] = pretrained_cfg.interpolation
        return cls(**{**defaults, **kwargs})

    def transform(self, train: bool = False) -> v2.Compose:
        """The torchvision transform from an RGB PIL image to a normalised `(3, image_size, image_size)` tensor."""
        return v2.Compose([self.resize_and_crop(train), self.to_pixel_values])

    def resize_and_crop(self, train: bool = False) -> v2.Compose:
        """The geometric part of `transform`: an RGB PIL image to a `uint8` `(3, image_size, image_size)` tensor.

        Fast input pipelines run this in DataLoader workers (a quarter of the bytes of float pixels to send back) and
        `to_pixel_values` on the batch; the result is identical to `transform`, which resizes in `uint8` too.
        """
        interpolation = INTERPOLATIONS[self.interpolation]
        crop = (
            [v2.RandomCrop(self.image_size), v2.RandomHorizontalFlip(p=0.5)]
            if train
            else [v2.CenterCrop(self.image_size)]
        )
        return v2.Compose(
            [
                v2.ToImage(),
                v2.Resize((self.resize_size, self.resize_size), interpolation=interpolation, antialias=True),
                *crop,
            ]
        )

    def to_pixel_values(self, images: torch.Tensor) -> torch.Tensor:
        """Scale `uint8` images (one or a batch, channels first) to [0, 1] and normalise them: the model's input."""
        pixel_values = v2.functional.to_dtype(images, torch.float32, scale=True)
        return v2.functional.normalize(pixel_values, mean=self.image_mean, std=self.image_std)

    def preprocess(
        self, images: ImageInput, train: bool = False, return_tensors: str = "pt", **kwargs
    ) -> BatchFeature:
        """Turn one image or a list of images (PIL, NumPy HWC or CHW tensors) into a batch of `pixel_values`.

        Args:
            images: the images; PIL images of any mode are converted to RGB.
            train: use the training augmentation (random crop and flip) instead of the centre crop.
        """
        if return_tensors != "pt":
            raise ValueError(f"CSKDImageProcessor returns PyTorch tensors only, got return_tensors={return_tensors!r}")
        images = make_flat_list_of_images(images)
        transform = self.transform(train=train)
        pixel_values = torch.stack([transform(_to_rgb(image)) for image in images])
        return BatchFeature({"pixel_values": pixel_values}, tensor_type=return_tensors)


def _to_rgb(image) -> Image.Image:
    if not isinstance(image, Image.Image):
        image = to_pil_image(image)
    return image if image.mode == "RGB" else image.convert("RGB")


__all__ = ["CSKDImageProcessor"]
