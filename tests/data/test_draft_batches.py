"""Draft JPEG decoding in the training pipeline: asked for, large JPEGs decode reduced; by default, as before."""

import io

import numpy as np
import pytest
import torch
from datasets import Dataset, Features
from datasets import Image as ImageFeature
from PIL import Image

from cskd_hf import CSKDImageProcessor
from cskd_hf.data.batching import UnlabeledBatches, example_seed
from cskd_hf.data.unlabeled import load_unlabeled

SIZES = [(1200, 900), (900, 1300), (300, 280)]  # the last one is too small for any reduction


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory):
    """The same JPEGs as a folder (decoded from their paths) and in a Parquet file (decoded from bytes)."""
    root = tmp_path_factory.mktemp("jpegs")
    rng = np.random.default_rng(0)
    (root / "folder").mkdir()
    encoded = []
    for index, (width, height) in enumerate(SIZES):
        gradient = np.linspace(0, 200, width)[None, :, None] + np.linspace(0, 55, height)[:, None, None]
        pixels = np.clip(gradient + rng.normal(0, 20, (height, width, 3)), 0, 255).astype(np.uint8)
        path = root / "folder" / f"{index}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        encoded.append({"bytes": path.read_bytes(), "path": path.name})
    Dataset.from_dict({"image": encoded}, features=Features({"image": ImageFeature()})).to_parquet(root / "s.parquet")
    return {"folder": str(root / "folder"), "parquet": f"parquet:{root / 's.parquet'}"}


def expected_pixels(source: str, image_processor: CSKDImageProcessor, draft_size: int | None) -> torch.Tensor:
    """What training should see, decoded by PIL directly: the training transform of each image of the stream (its
    bytes, else its file), with its seed."""
    pixel_values = []
    for position, item in enumerate(load_unlabeled([source], shuffle_buffer=0)):
        data, path = item["image"]["bytes"], item["image"]["path"]
        with Image.open(io.BytesIO(data) if data else path) as image:
            if draft_size:
                image.draft("RGB", (draft_size, draft_size))
            image = image.convert("RGB")
        torch.manual_seed(example_seed(0, 0, position))
        pixel_values.append(image_processor(image, train=True)["pixel_values"][0])
    return torch.stack(pixel_values)


@pytest.mark.parametrize("source", ["folder", "parquet"])
def test_training_batches_decode_fully_by_default_and_reduced_with_draft(jpegs, source):
    image_processor = CSKDImageProcessor()
    full = expected_pixels(jpegs[source], image_processor, None)
    reduced = expected_pixels(jpegs[source], image_processor, image_processor.resize_size)
    assert not torch.equal(full[0], reduced[0]) and not torch.equal(full[1], reduced[1])
    assert torch.equal(full[2], reduced[2])  # 300 px: no reduction keeps both sides at 256 or more

    def batch(**kwargs):
        stream = load_unlabeled([jpegs[source]], shuffle_buffer=0)
        return next(iter(UnlabeledBatches(stream, image_processor, len(SIZES), **kwargs)))["pixel_values"]

    assert torch.equal(batch(), full)
    assert torch.equal(batch(draft=False), full)
    assert torch.equal(batch(draft=True), reduced)


def test_a_processor_without_draft_decoding_decodes_fully_even_if_asked(jpegs):
    image_processor = CSKDImageProcessor(draft_decoding=False)
    batches = UnlabeledBatches(load_unlabeled([jpegs["folder"]], shuffle_buffer=0), image_processor, 3, draft=True)
    assert batches.draft_size is None
    assert torch.equal(next(iter(batches))["pixel_values"], expected_pixels(jpegs["folder"], image_processor, None))
