"""Image processor of CSKD models: the paper's train and eval transforms, normalised as the timm backbone expects."""

import numpy as np
import timm
import torch
from PIL import Image
from torchvision.transforms import v2
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature
from transformers.image_utils import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    ChannelDimension,
    ImageInput,
    infer_channel_dimension_format,
    make_flat_list_of_images,
)
from transformers.utils import filter_out_non_signature_kwargs

from .configuration_cskd import CSKDConfig

# The paper resizes to 256x256 and crops 224x224; other input sizes keep that ratio.
RESIZE_TO_CROP_RATIO = 256 / 224

RESIZE_MODES = ("square", "shortest_edge")
RESIZE_INPUTS = ("uint8", "float", "pil")

INTERPOLATIONS = {
    "nearest": v2.InterpolationMode.NEAREST,
    "bilinear": v2.InterpolationMode.BILINEAR,
    "bicubic": v2.InterpolationMode.BICUBIC,
}


class CSKDImageProcessor(BaseImageProcessor):
    r"""
    Resizes to a `resize_size` square (the paper's 256x256, aspect ratio not kept), then crops `image_size`: a centre
    crop for evaluation, a random crop and a horizontal flip (p=0.5) for training; scales to [0, 1] and normalises.
    Converted predictors keep their own code's preprocessing: the shorter side resized (`resize_mode`), on float
    pixels for pyiqa's models and by PIL for CLIP's own (`resize_input`).

    Args:
        image_size: side of the model input (224 in the paper).
        resize_size: side of the square the image is resized to before cropping; defaults to
            `round(image_size * 256 / 224)`.
        image_mean: per-channel mean, from the backbone's timm pretrained config.
        image_std: per-channel std, from the backbone's timm pretrained config.
        interpolation: `"bicubic"`, `"bilinear"` or `"nearest"`.
        do_convert_rgb: convert every image to RGB (grey replicated, alpha dropped) before the transform.
        resize_mode: `"square"` (both sides to `resize_size`) or `"shortest_edge"` (the shorter side to
            `resize_size`, the aspect ratio kept, as CLIP and pyiqa resize).
        resize_input: what is resized: `"uint8"` pixels (the default: a quarter of the bytes of floats in input
            pipelines), `"float"` pixels in [0, 1] (as pyiqa resizes tensors) or a PIL image with PIL's own resize
            and crop (as OpenAI's CLIP preprocessing does, which the LAION predictor uses).
        draft_decoding: let large JPEGs decode at a reduced size that still covers `resize_size` (`cskd score`, the
            pipeline and the Space do, see `draft_size`); converted predictors turn it off, as their originals
            decode every image in full.
    """

    model_input_names = ["pixel_values"]

    def __init__(
        self,
        image_size: int = 224,
        resize_size: int | None = None,
        image_mean: list[float] | None = None,
        image_std: list[float] | None = None,
        interpolation: str = "bicubic",
        do_convert_rgb: bool = True,
        resize_mode: str = "square",
        resize_input: str = "uint8",
        draft_decoding: bool = True,
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
        if resize_mode not in RESIZE_MODES:
            raise ValueError(f"`resize_mode` must be one of {RESIZE_MODES}, got {resize_mode!r}")
        if resize_input not in RESIZE_INPUTS:
            raise ValueError(f"`resize_input` must be one of {RESIZE_INPUTS}, got {resize_input!r}")
        self.interpolation = interpolation
        self.do_convert_rgb = do_convert_rgb
        self.resize_mode = resize_mode
        self.resize_input = resize_input
        self.draft_decoding = draft_decoding

    @classmethod
    def from_model_config(cls, config: CSKDConfig, **kwargs) -> "CSKDImageProcessor":
        """The processor for a model config: its input size and its timm backbone's normalisation, or for a CLIP
        backbone CLIP's own preprocessing."""
        defaults = {"image_size": config.image_size}
        if config.backbone_type == "clip":
            # CLIP's own preprocessing (`CLIPImageProcessor`): the shorter side to the input size with PIL's bicubic,
            # a centre crop, CLIP's mean and std. A square resize would distort the aspect of what CLIP sees.
            defaults |= {
                "image_mean": list(OPENAI_CLIP_MEAN),
                "image_std": list(OPENAI_CLIP_STD),
                "interpolation": "bicubic",
                "resize_mode": "shortest_edge",
                "resize_size": config.image_size,
                "resize_input": "pil",
                "draft_decoding": False,
            }
            return cls(**{**defaults, **kwargs})
        pretrained_cfg = timm.get_pretrained_cfg(config.architecture)
        if pretrained_cfg is not None:
            defaults["image_mean"] = list(pretrained_cfg.mean)
            defaults["image_std"] = list(pretrained_cfg.std)
            if pretrained_cfg.interpolation in INTERPOLATIONS:
                defaults["interpolation"] = pretrained_cfg.interpolation
        return cls(**{**defaults, **kwargs})

    def draft_size(self, draft: bool = True) -> int | None:
        """The smallest size a JPEG may be decoded at for this processor (`open_image`'s `draft_size`), or None for
        a full decode: when `draft` is asked for and `draft_decoding` allows it."""
        return self.resize_size if draft and self.draft_decoding else None

    def transform(self, train: bool = False) -> v2.Compose:
        """The torchvision transform from an RGB PIL image to a normalised `(3, image_size, image_size)` tensor."""
        return v2.Compose([self.resize_and_crop(train), self.to_pixel_values])

    def resize_and_crop(self, train: bool = False) -> v2.Compose:
        """The geometric part of `transform`: an RGB PIL image (or a `uint8` tensor) to a `uint8`
        `(3, image_size, image_size)` tensor (float in [0, 1] when `resize_input="float"`).

        Fast input pipelines run this in DataLoader workers (a quarter of the bytes of float pixels to send back) and
        `to_pixel_values` on the batch; the result is identical to `transform`, which resizes in `uint8` too.
        """
        crop = (
            [v2.RandomCrop(self.image_size), v2.RandomHorizontalFlip(p=0.5)]
            if train
            else [v2.CenterCrop(self.image_size)]
        )
        return v2.Compose([self.resize_transform(), *crop, *([v2.ToImage()] if self.resize_input == "pil" else [])])

    def resize_transform(self) -> v2.Compose:
        """The resize that comes before the crop: an RGB PIL image (or a `uint8` tensor) to a `uint8` tensor (a PIL
        image when `resize_input="pil"`, float when `"float"`). `cskd data shard` stores its output, which this resize
        then leaves unchanged."""
        size = self.resize_size if self.resize_mode == "shortest_edge" else (self.resize_size, self.resize_size)
        resize = v2.Resize(size, interpolation=INTERPOLATIONS[self.interpolation], antialias=True)
        if self.resize_input == "pil":
            return v2.Compose([_to_pil, resize])
        as_float = [v2.ToDtype(torch.float32, scale=True)] if self.resize_input == "float" else []
        return v2.Compose([v2.ToImage(), *as_float, resize])

    def to_pixel_values(
        self, images: torch.Tensor, image_mean: list[float] | None = None, image_std: list[float] | None = None
    ) -> torch.Tensor:
        """Scale `uint8` images (one or a batch, channels first) to [0, 1] (float ones are already) and normalise
        them: the model's input."""
        pixel_values = v2.functional.to_dtype(images, torch.float32, scale=True)
        mean = self.image_mean if image_mean is None else image_mean
        std = self.image_std if image_std is None else image_std
        return v2.functional.normalize(pixel_values, mean=list(mean), std=list(std))

    @filter_out_non_signature_kwargs()
    def preprocess(
        self,
        images: ImageInput,
        train: bool = False,
        do_convert_rgb: bool | None = None,
        image_mean: float | list[float] | None = None,
        image_std: float | list[float] | None = None,
        input_data_format: str | ChannelDimension | None = None,
        return_tensors: str = "pt",
    ) -> BatchFeature:
        """Turn one image or a list of images (PIL, NumPy or tensors, channels first or last) into `pixel_values`.

        Args:
            images: the images.
            train: use the training augmentation (random crop and flip) instead of the centre crop.
            do_convert_rgb: convert to RGB first (default: the processor's `do_convert_rgb`); without it, arrays keep
                their channels (e.g. 4), and `image_mean`/`image_std` need one value per channel.
            image_mean: per-channel mean for this call (default: the processor's).
            image_std: per-channel std for this call (default: the processor's).
            input_data_format: `"channels_first"` or `"channels_last"` for arrays and tensors (inferred if not given).
        Unknown keyword arguments are dropped with a warning that names them.
        """
        if return_tensors != "pt":
            raise ValueError(f"CSKDImageProcessor returns PyTorch tensors only, got return_tensors={return_tensors!r}")
        do_convert_rgb = self.do_convert_rgb if do_convert_rgb is None else do_convert_rgb
        geometry = self.resize_and_crop(train=train)
        crops = [
            geometry(to_channels_first(image, do_convert_rgb, input_data_format))
            for image in make_flat_list_of_images(images)
        ]
        channels = {crop.shape[0] for crop in crops}
        mean, std = (
            _per_channel(image_mean, self.image_mean, channels),
            _per_channel(image_std, self.image_std, channels),
        )
        pixel_values = torch.stack([self.to_pixel_values(crop, mean, std) for crop in crops])
        return BatchFeature({"pixel_values": pixel_values}, tensor_type=return_tensors)


def _to_pil(image) -> Image.Image:
    return image if isinstance(image, Image.Image) else v2.functional.to_pil_image(image)


def to_channels_first(
    image, do_convert_rgb: bool = True, input_data_format: str | ChannelDimension | None = None
) -> torch.Tensor:
    """One image as a `uint8` `(channels, height, width)` tensor; in RGB with `do_convert_rgb`.

    PIL images of any mode convert through PIL. Arrays and tensors may be channels first or last (say which with
    `input_data_format` when the shape cannot tell); floats in [0, 1] are scaled to [0, 255], as transformers reads
    them.
    """
    if isinstance(image, Image.Image):
        if do_convert_rgb and image.mode != "RGB":
            image = image.convert("RGB")
        return v2.functional.pil_to_tensor(image)
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.ndim == 2:
        array = array[None]
        input_data_format = ChannelDimension.FIRST
    if array.ndim != 3:
        raise ValueError(f"an image must have 2 or 3 dimensions, got shape {array.shape}")
    if input_data_format is None:
        input_data_format = infer_channel_dimension_format(array, num_channels=(1, 2, 3, 4))
    if ChannelDimension(input_data_format) == ChannelDimension.LAST:
        array = array.transpose(2, 0, 1)
    if array.dtype.kind == "f":
        array = array * 255 if array.size and array.max() <= 1 else array
        array = array.clip(0, 255)
    tensor = torch.from_numpy(np.ascontiguousarray(array.astype(np.uint8)))
    if do_convert_rgb:
        # As PIL converts: grey is replicated, an alpha channel dropped.
        tensor = tensor[:1].expand(3, -1, -1) if tensor.shape[0] <= 2 else tensor[:3]
    return tensor


def _per_channel(value: float | list[float] | None, default: list[float], channels: set[int]) -> list[float]:
    """Normalisation values for a batch whose images all have the same number of channels."""
    if len(channels) != 1:
        raise ValueError(f"images in one batch need the same number of channels, got {sorted(channels)}")
    (count,) = channels
    value = default if value is None else value
    values = [float(value)] * count if isinstance(value, (int, float)) else [float(v) for v in value]
    if len(values) != count:
        raise ValueError(f"{len(values)} normalisation values ({values}) for images with {count} channels")
    return values


__all__ = ["CSKDImageProcessor"]
