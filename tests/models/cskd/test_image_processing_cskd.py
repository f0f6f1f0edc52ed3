"""`CSKDImageProcessor`: its transforms (evaluation, training, the uint8 crop then batch normalisation), its
options and normalisations, saving and reloading."""

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor

from cskd_hf import CSKDConfig, CSKDImageProcessor
from cskd_hf.data.images import open_image
from tests.helpers import write_tiny_clip


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


def test_the_preprocessing_of_converted_predictors():
    """Shorter side resized (aspect kept) on float pixels, as pyiqa does, or by PIL, as OpenAI's CLIP does."""
    from torchvision.transforms import v2

    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 90, 3), dtype=np.uint8))
    common = {"image_size": 32, "resize_size": 40, "image_mean": [0.0] * 3, "image_std": [1.0] * 3}
    as_pyiqa = CSKDImageProcessor(
        resize_mode="shortest_edge", resize_input="float", interpolation="bilinear", **common
    )
    floats = v2.functional.to_dtype(v2.functional.pil_to_tensor(image), torch.float32, scale=True)
    resized = v2.functional.resize(floats, 40, antialias=True)  # 40 x 60: the aspect ratio kept
    assert resized.shape[-2:] == (40, 60)
    torch.testing.assert_close(as_pyiqa(image)["pixel_values"][0], v2.functional.center_crop(resized, 32))

    as_clip = CSKDImageProcessor(resize_mode="shortest_edge", resize_input="pil", draft_decoding=False, **common)
    by_pil = image.resize((60, 40), Image.Resampling.BICUBIC).crop((14, 4, 46, 36))
    expected = torch.from_numpy(np.array(by_pil)).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(as_clip(image)["pixel_values"][0], expected)
    assert as_clip.draft_size() is None and CSKDImageProcessor(**common).draft_size() == 40


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
        ({"resize_mode": "longest_edge"}, "resize_mode"),
        ({"resize_input": "float16"}, "resize_input"),
    ],
)
def test_bad_values_raise(kwargs, field):
    with pytest.raises(ValueError, match=field):
        CSKDImageProcessor(**kwargs)


# Call-time arguments, as transformers' image processors take them (issue 13).


def test_four_channel_arrays_and_tensors_with_their_own_normalisation():
    processor = CSKDImageProcessor(image_size=8, resize_size=8)
    rgba = np.random.default_rng(0).integers(0, 255, (8, 8, 4), dtype=np.uint8)
    for image, data_format in ((rgba, "channels_last"), (torch.from_numpy(rgba).permute(2, 0, 1), "channels_first")):
        pixel_values = processor(
            image, do_convert_rgb=False, input_data_format=data_format, image_mean=[0.0] * 4, image_std=[1.0] * 4
        )["pixel_values"]
        assert pixel_values.shape == (1, 4, 8, 8)
        torch.testing.assert_close(pixel_values[0], torch.from_numpy(rgba).permute(2, 0, 1).float() / 255)
    # Converted to RGB (alpha dropped, as PIL does), it matches the RGB image.
    rgb = processor(Image.fromarray(rgba[..., :3]))["pixel_values"]
    torch.testing.assert_close(processor(rgba)["pixel_values"], rgb)


def test_call_time_mean_and_std_are_used():
    processor = CSKDImageProcessor(image_size=8, resize_size=8)
    image = Image.new("RGB", (8, 8), (255, 0, 51))
    pixel_values = processor(image, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.25, 1.0])["pixel_values"]
    torch.testing.assert_close(pixel_values[0, :, 0, 0], torch.tensor([1.0, -2.0, -0.3]))
    assert processor.image_mean != [0.5, 0.5, 0.5]  # the processor itself is unchanged
    with pytest.raises(ValueError, match="2 normalisation values"):
        processor(image, image_mean=[0.5, 0.5])


def test_grey_arrays_keep_one_channel_without_rgb_conversion_and_unknown_arguments_warn():
    processor = CSKDImageProcessor(image_size=8, resize_size=8)
    grey = np.full((10, 12, 1), 128, dtype=np.uint8)
    assert processor(grey)["pixel_values"].shape == (1, 3, 8, 8)
    assert processor(grey, do_convert_rgb=False, image_mean=0.5, image_std=0.5)["pixel_values"].shape == (1, 1, 8, 8)
    with pytest.warns(UserWarning, match="resample"):
        processor(grey, resample=3)


def test_a_clip_backbone_gets_clips_own_preprocessing(tmp_path):
    """Direct CLIP fine-tuning and the CLIP linear probe see what CLIP sees: the shorter side resized, a centre crop,
    CLIP's mean and std (`CLIPImageProcessor`), not the square 256-px squash of the other backbones."""
    clip_dir = write_tiny_clip(tmp_path / "clip", image_size=32)
    processor = CSKDImageProcessor.from_model_config(CSKDConfig.for_clip(str(clip_dir)))
    assert (processor.resize_mode, processor.resize_size, processor.image_size) == ("shortest_edge", 32, 32)
    wide = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8))
    ours = processor(wide, return_tensors="pt")["pixel_values"]
    clips = AutoImageProcessor.from_pretrained(clip_dir)(wide, return_tensors="pt")["pixel_values"]
    assert ours.shape == clips.shape == (1, 3, 32, 32)
    one_grey_level = 1 / 255 / min(processor.image_std)
    difference = (ours - clips).abs()
    assert difference.max() <= one_grey_level + 1e-5 and (difference > 1e-5).float().mean() < 0.01  # PIL rounding
    squashed = CSKDImageProcessor(image_size=32, image_mean=processor.image_mean, image_std=processor.image_std)
    assert (squashed(wide, return_tensors="pt")["pixel_values"] - clips).abs().max() > 0.1  # what the fix changes


def test_uint8_crop_then_batch_normalisation_equals_the_processors_transform(sample_dir):
    processor = CSKDImageProcessor(image_size=64)
    image = open_image(sorted(sample_dir.iterdir())[0])
    assert processor.resize_and_crop()(image).dtype == torch.uint8
    batch = torch.stack([processor.resize_and_crop()(image)] * 2)
    assert torch.equal(processor.to_pixel_values(batch)[0], processor(image)["pixel_values"][0])
