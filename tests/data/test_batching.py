"""`cskd_hf.data.batching`: the training batches of the unlabeled stream (corrupt images skipped and counted
whatever the workers, resumed exactly where the stream stopped, draft JPEG decoding only when asked), workers
not forked from the training process, and the labeled images' batches."""

import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset, Features, Sequence, Value
from datasets import Image as ImageFeature
from PIL import Image
from torch.utils.data import DataLoader

from cskd_hf import CSKDImageProcessor
from cskd_hf.data.ava import load_ava
from cskd_hf.data.batching import LabeledImages, UnlabeledBatches, collate_labeled, example_seed, worker_processes
from cskd_hf.data.unlabeled import load_unlabeled
from tests.data.benchmark_files import write_ava
from tests.data.corpus import NUM_FOLDER_IMAGES, NUM_PARQUET_IMAGES


def test_batches_skip_and_count_the_corrupt_image_with_any_number_of_workers(corpus):
    processor = CSKDImageProcessor(image_size=16)
    batches = UnlabeledBatches(load_unlabeled([corpus["folder"], corpus["parquet"]], seed=1), processor, batch_size=4)
    runs = []
    for workers in (0, 2):
        batches.set_epoch(0)
        runs.append(list(DataLoader(batches, batch_size=None, **worker_processes(batches, workers))))
    for run in runs:
        assert sum(batch["num_read"] for batch in run) == NUM_FOLDER_IMAGES + 1 + NUM_PARQUET_IMAGES
        assert sum(batch["num_skipped"] for batch in run) == 1
        assert sum(len(batch["pixel_values"]) for batch in run) == NUM_FOLDER_IMAGES + NUM_PARQUET_IMAGES
    for a, b in zip(*runs):  # the same batches, augmentations included, whatever the worker count
        assert torch.equal(a["pixel_values"], b["pixel_values"])


class ParentOfWorker(torch.utils.data.IterableDataset):
    def __iter__(self):
        yield os.getppid()


def test_training_workers_are_not_forked_from_the_training_process():
    # A worker forked from a process whose threads are exiting can hang in CPython's after-fork code.
    dataset = ParentOfWorker()
    assert list(DataLoader(dataset, batch_size=None, num_workers=1, multiprocessing_context="fork")) == [os.getpid()]
    parents = list(DataLoader(dataset, batch_size=None, **worker_processes(dataset, 1)))
    assert len(parents) == 1 and parents[0] != os.getpid()
    assert worker_processes(dataset, 0) == {"num_workers": 0}


def test_resume_continues_exactly_where_the_stream_stopped(corpus):
    processor = CSKDImageProcessor(image_size=16)
    batches = UnlabeledBatches(load_unlabeled([corpus["folder"]], seed=2), processor, batch_size=5)
    batches.set_epoch(1)
    uninterrupted = list(DataLoader(batches, batch_size=None, num_workers=2))
    stopped_after = 3
    num_read = sum(batch["num_read"] for batch in uninterrupted[:stopped_after])
    batches.resume_from(epoch=1, num_read=num_read)  # what a resumed run restores from its checkpoint
    resumed = list(DataLoader(batches, batch_size=None, num_workers=2))
    assert len(resumed) == len(uninterrupted) - stopped_after
    for a, b in zip(resumed, uninterrupted[stopped_after:]):
        assert torch.equal(a["pixel_values"], b["pixel_values"])
    # A checkpoint taken right after the stream's short last chunk resumes at the end of the epoch.
    total = sum(batch["num_read"] for batch in uninterrupted)
    assert total % 5, "the corpus should end in a short chunk"
    batches.resume_from(epoch=1, num_read=total)
    assert list(DataLoader(batches, batch_size=None, num_workers=2)) == []
    batches.resume_from(epoch=1, num_read=4)  # not the end of this stream
    with pytest.raises(
        ValueError, match="after 4 items of a stream read to its end, but chunk 0 of this stream holds 5"
    ):
        list(DataLoader(batches, batch_size=None, num_workers=2))  # raised in a worker, re-raised here
    batches.resume_from(epoch=1, num_read=total + 10)  # a checkpoint of a longer stream
    with pytest.raises(ValueError, match="but this stream has only 5 chunks"):
        list(DataLoader(batches, batch_size=None, num_workers=0))


def test_labeled_images_give_labels_and_skip_unreadable_files(tmp_path):
    ava = load_ava(write_ava(tmp_path / "AVA"), verify="none")["train"]  # the corrupt and missing images stay in
    dataset = LabeledImages(ava, CSKDImageProcessor(image_size=16), train=True, seed=0)
    batch = collate_labeled([dataset[i] for i in range(len(dataset))])
    assert batch["num_skipped"] == 1  # the missing image; the corrupt one is in the test list
    assert batch["pixel_values"].shape == (len(dataset) - 1, 3, 16, 16)
    readable = [i for i in range(len(dataset)) if dataset[i] is not None]
    np.testing.assert_allclose(batch["labels"].numpy(), np.array(ava.select(readable)["distribution"]), rtol=1e-6)
    assert torch.equal(dataset[0]["pixel_values"], dataset[0]["pixel_values"])  # seeded per (epoch, index)
    dataset.set_epoch(1)
    assert not torch.equal(
        dataset[0]["pixel_values"], LabeledImages(ava, dataset.image_processor, True)[0]["pixel_values"]
    )


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


@pytest.mark.parametrize("train", [True, False])
def test_uint8_crops_normalised_on_the_device_are_the_float_batches_bit_for_bit(corpus, tmp_path, train):
    """What workers hand on (`uint8=True`, a quarter of the bytes), normalised as the trainers do it, is exactly what
    they handed on before, random crops and flips included, for the labeled and the streamed data."""
    processor = CSKDImageProcessor(image_size=16)
    streamed = {
        uint8: list(UnlabeledBatches(load_unlabeled([corpus["folder"]], seed=4), processor, 5, train, 4, uint8=uint8))
        for uint8 in (False, True)
    }
    assert len(streamed[True]) == len(streamed[False]) > 1
    for crops, floats in zip(streamed[True], streamed[False], strict=True):
        assert crops["pixel_values"].dtype == torch.uint8 and crops["keys"] == floats["keys"]
        assert torch.equal(processor.to_pixel_values(crops["pixel_values"]), floats["pixel_values"])

    paths = sorted(str(path) for path in Path(corpus["folder"]).rglob("*.png"))[:6]
    dataset = Dataset.from_dict(
        {"image": paths, "distribution": [[0.5, 0.5]] * 6, "mean_score": [1.5] * 6},
        features=Features(
            {"image": ImageFeature(), "distribution": Sequence(Value("float32")), "mean_score": Value("float32")}
        ),
    )
    labeled = {uint8: LabeledImages(dataset, processor, train=train, seed=2, uint8=uint8) for uint8 in (False, True)}
    for images in labeled.values():
        images.set_epoch(3)
    for index in range(len(dataset)):
        crop = labeled[True][index]["pixel_values"]
        assert crop.dtype == torch.uint8
        assert torch.equal(processor.to_pixel_values(crop), labeled[False][index]["pixel_values"])
