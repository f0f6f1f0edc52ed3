import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor

from cskd_hf import CSKDConfig, CSKDImageProcessor


def test_eval_transform_is_resize_then_centre_crop_then_normalise():
    processor = CSKDImageProcessor(image_size=4, resize_size=8, image_mean=[0.5] * 3, image_std=[0.25] * 3)
    # An 8x8 image whose centre 4x4 is white and border black: resize is a no-op, the crop keeps only the white.
    array = np.zeros((8, 8, 3), dtype=np.uint8)
    array[2:6, 2:6] = 255
    pixel_values = processor(Image.fromarray(array))["pixel_values"]
    assert pixel_values.shape == (1, 3, 4, 4)
    torch.testing.assert_close(pixel_values, torch.full((1, 3, 4, 4), (1.0 - 0.5) / 0.25))


def test_default_resize_keeps_the_papers_256_to_224_ratio():
    assert CSKDImageProcessor(image_size=224).resize_size == 256
    assert CSKDImageProcessor(image_size=64).resize_size == 73


def test_train_transform_random_crop_and_flip():
    processor = CSKDImageProcessor(image_size=32, resize_size=48)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8))
    eval_batches = [processor(image)["pixel_values"] for _ in range(2)]
    assert torch.equal(*eval_batches)
    torch.manual_seed(0)
    train_batches = [processor(image, train=True)["pixel_values"] for _ in range(8)]
    assert all(batch.shape == (1, 3, 32, 32) for batch in train_batches)
    assert len({batch.sum().item() for batch in train_batches}) > 1  # different crops / flips


def test_batches_and_any_pil_mode():
    processor = CSKDImageProcessor(image_size=16)
    images = [Image.new("L", (30, 20), 128), Image.new("RGBA", (20, 30)), Image.new("RGB", (16, 16))]
    assert processor(images)["pixel_values"].shape == (3, 3, 16, 16)


def test_from_model_config_uses_the_backbones_timm_normalisation():
    mobilenet = CSKDImageProcessor.from_model_config(CSKDConfig(architecture="mobilenetv2_100"))
    assert mobilenet.image_mean == pytest.approx([0.485, 0.456, 0.406])
    assert mobilenet.interpolation == "bicubic"
    vit = CSKDImageProcessor.from_model_config(CSKDConfig(architecture="vit_tiny_patch16_224", image_size=160))
    assert vit.image_mean == pytest.approx([0.5, 0.5, 0.5]) and vit.image_size == 160


def test_saved_as_preprocessor_config_and_reloaded(tmp_path):
    processor = CSKDImageProcessor(image_size=96, interpolation="bilinear", image_mean=[0.1, 0.2, 0.3])
    processor.save_pretrained(tmp_path)
    assert (tmp_path / "preprocessor_config.json").exists()
    loaded = AutoImageProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, CSKDImageProcessor)
    assert loaded.to_dict() == processor.to_dict()


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"image_size": 0}, "image_size"),
        ({"image_size": 64, "resize_size": 32}, "resize_size"),
        ({"interpolation": "lanczos"}, "interpolation"),
        ({"image_mean": [0.5]}, "image_mean"),
    ],
)
def test_bad_values_raise(kwargs, field):
    with pytest.raises(ValueError, match=field):
        CSKDImageProcessor(**kwargs)
