"""The scoring spec reproduces `CSKDImageProcessor`: for the recipe's processors and every converter's, on photos of
several sizes and modes, from a saved folder as from the objects, and through its JSON file."""

import shutil

import numpy as np
import pytest
from PIL import Image

from cskd_hf import CSKDConfig, CSKDImageProcessor
from cskd_hf.convert import NIMA_ARCHITECTURES, clip_image_processor, pyiqa_image_processor
from cskd_hf.data.images import open_image
from cskd_hf.data.samples import sample_photo
from cskd_hf.runtime.spec import ScoringSpec
from tests.helpers import tiny_config, write_awkward_images


def recipe_processor(architecture: str, image_size: int = 224) -> tuple[CSKDConfig, CSKDImageProcessor]:
    config = CSKDConfig(architecture=architecture, image_size=image_size)
    return config, CSKDImageProcessor.from_model_config(config)


def nima_processor(kind: str) -> tuple[CSKDConfig, CSKDImageProcessor]:
    architecture, image_size = NIMA_ARCHITECTURES[kind]
    config = CSKDConfig(architecture=architecture, image_size=image_size)
    return config, pyiqa_image_processor(config)


PROCESSORS = {
    # the recipe's students and teachers (square resize of uint8 pixels, timm's interpolation and normalisation)
    "mobilenetv2": lambda clip: recipe_processor("mobilenetv2_100"),
    "vit-tiny": lambda clip: recipe_processor("vit_tiny_patch16_224"),
    "swin-base": lambda clip: recipe_processor("swin_base_patch4_window7_224"),
    "tiny-test": lambda clip: (tiny_config(), CSKDImageProcessor.from_model_config(tiny_config())),
    # the converters' (shorter side, float pixels as pyiqa or PIL's resize as OpenAI's CLIP)
    "pyiqa-nima": lambda clip: nima_processor("pyiqa-nima"),
    "pyiqa-nima-vgg16": lambda clip: nima_processor("pyiqa-nima-vgg16"),
    "laion-aesthetic": lambda clip: (lambda config: (config, clip_image_processor(config)))(
        CSKDConfig.for_clip(str(clip))
    ),
    # CLIP itself as a backbone (phase I's teacher scored directly)
    "clip": lambda clip: (lambda config: (config, CSKDImageProcessor.from_model_config(config)))(
        CSKDConfig.for_clip(str(clip))
    ),
}


@pytest.fixture(scope="module")
def photo_files(sample_dir, tmp_path_factory):
    """The processor tests' photos (scikit-image's, JPEG and PNG), odd sizes, and the awkward modes."""
    folder = tmp_path_factory.mktemp("spec-photos")
    rng = np.random.default_rng(0)
    for size in [(97, 131), (300, 40), (33, 500), (256, 256)]:
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(
            folder / f"noise-{size[0]}x{size[1]}.png"
        )
    awkward = write_awkward_images(folder / "awkward", sample_photo("coffee"))
    readable = [path for kind, path in awkward.items() if kind not in ("truncated", "empty", "text")]
    return sorted(sample_dir.iterdir()) + sorted(folder.glob("*.png")) + readable


def spec_of(config: CSKDConfig, processor: CSKDImageProcessor) -> ScoringSpec:
    return ScoringSpec.from_dicts(config.to_dict(), processor.to_dict())


@pytest.mark.parametrize("name", sorted(PROCESSORS))
def test_the_spec_reproduces_the_image_processor(name, random_clip_dir, photo_files):
    config, processor = PROCESSORS[name](random_clip_dir)
    spec = spec_of(config, processor)
    for path in photo_files:
        image = open_image(path)
        expected = processor(image)["pixel_values"][0].numpy()
        actual = spec.pixel_values(image)
        assert actual.shape == expected.shape == (3, spec.image_size, spec.image_size), path.name
        levels = np.abs(actual - expected) * np.asarray(spec.image_std)[:, None, None] * 255  # in 8-bit levels
        if spec.resize_input == "uint8":
            # PIL's and torchvision's fixed-point uint8 resamplers round differently: one level here and there, two
            # on a few pixels of hard colour edges (1 in 150,000 of the colour wheel's).
            assert levels.max() <= 2.0 + 1e-3 and (levels > 1.0 + 1e-3).mean() <= 1e-4, (name, path.name)
            assert levels.mean() <= 0.01, (name, path.name)
        else:
            assert levels.max() <= 1e-2, (name, path.name)


def test_the_spec_holds_the_processors_and_configs_fields(random_clip_dir):
    config, processor = PROCESSORS["pyiqa-nima"](random_clip_dir)
    spec = spec_of(config, processor)
    assert (spec.resize_mode, spec.resize_input, spec.interpolation) == ("shortest_edge", "float", "bilinear")
    assert spec.resize_size == processor.resize_size and spec.image_size == processor.image_size == 299
    assert list(spec.image_mean) == processor.image_mean and list(spec.image_std) == processor.image_std
    assert spec.draft_size() == processor.draft_size() is None
    assert list(spec.bin_scores) == config.bin_scores and spec.score_head == "distribution"
    laion = spec_of(*PROCESSORS["laion-aesthetic"](random_clip_dir))
    assert (laion.resize_input, laion.score_head) == ("pil", "distribution")
    recipe = spec_of(*PROCESSORS["mobilenetv2"](random_clip_dir))
    assert recipe.draft_size() == PROCESSORS["mobilenetv2"](random_clip_dir)[1].draft_size() == 256


def test_a_saved_folder_gives_the_same_spec_and_the_json_round_trips(tiny_scorer_dir, tmp_path):
    from transformers import AutoConfig, AutoImageProcessor

    spec = ScoringSpec.from_model_folder(tiny_scorer_dir)
    config = AutoConfig.from_pretrained(tiny_scorer_dir)
    assert spec == spec_of(config, AutoImageProcessor.from_pretrained(tiny_scorer_dir))
    assert ScoringSpec.load(spec.save(tmp_path / "spec.json")) == spec


def test_nearest_on_tensors_is_refused_where_pil_would_sample_other_pixels(tiny_scorer_dir, sample_dir, tmp_path):
    config = tiny_config()
    for resize_input in ("uint8", "float"):
        processor = CSKDImageProcessor.from_model_config(config, interpolation="nearest", resize_input=resize_input)
        with pytest.raises(ValueError, match="nearest interpolation of uint8 or float pixels"):
            spec_of(config, processor)
    pil = CSKDImageProcessor.from_model_config(config, interpolation="nearest", resize_input="pil")
    image = open_image(sorted(sample_dir.glob("*.jpg"))[0])
    np.testing.assert_array_equal(spec_of(config, pil).pixel_values(image), pil(image)["pixel_values"][0].numpy())
    # `cskd export` says so before exporting anything.
    from cskd_hf.cli import main

    model_dir = tmp_path / "nearest"
    shutil.copytree(tiny_scorer_dir, model_dir)
    CSKDImageProcessor.from_model_config(config, interpolation="nearest").save_pretrained(model_dir)
    assert main(["export", "--model", str(model_dir)]) == 2
    assert not (model_dir / "onnx").exists()


def test_a_bad_spec_file_is_named(tmp_path):
    path = tmp_path / "spec.json"
    path.write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="spec.json: not a CSKD scoring spec"):
        ScoringSpec.load(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="spec.json: not valid JSON"):
        ScoringSpec.load(path)
    path.write_text('{"format": "cskd-scoring-spec", "version": 1, "image_size": 4, "colour": "red"}')
    with pytest.raises(ValueError, match=r"unknown spec fields \['colour'\]"):
        ScoringSpec.load(path)
    with pytest.raises(ValueError, match="no 'bin_scores' field"):
        ScoringSpec.from_dicts({}, CSKDImageProcessor(image_size=8).to_dict())
