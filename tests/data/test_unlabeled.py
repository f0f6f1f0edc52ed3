import hashlib
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset, Features
from datasets import Image as ImageFeature
from PIL import Image
from torch.utils.data import DataLoader

from cskd_hf import CSKDImageProcessor
from cskd_hf.data.ava import load_ava
from cskd_hf.data.batching import LabeledImages, UnlabeledBatches, collate_labeled, worker_processes
from cskd_hf.data.prepare import write_parquet
from cskd_hf.data.unlabeled import UnlabeledSource, load_unlabeled
from tests.data.benchmark_files import write_ava

NUM_FOLDER_IMAGES = 23  # plus one corrupt file
NUM_PARQUET_IMAGES = 9


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """An image folder (nested, with a corrupt file) and a Parquet shard: two kinds of source."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    for i in range(NUM_FOLDER_IMAGES):
        folder = root / "folder" / f"class{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (24 + i, 30, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    (root / "folder" / "class0" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    paths = []
    for i in range(NUM_PARQUET_IMAGES):
        path = root / "for-parquet" / f"p{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (20, 20 + i, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    table = Dataset.from_dict({"image": paths}, features=Features({"image": ImageFeature()}))
    write_parquet({"train": table}, root / "parquet")
    return {"folder": str(root / "folder"), "parquet": str(root / "parquet" / "data" / "*.parquet")}


def identity(item: dict) -> str:
    image = item["image"]
    return hashlib.sha1(image["bytes"]).hexdigest() if image["bytes"] else image["path"]


def test_webdataset_tars_as_a_source(corpus, tmp_path):
    images = sorted(Path(corpus["folder"]).rglob("*.png"))[:6]
    for shard in range(2):
        with tarfile.open(tmp_path / f"shard-{shard}.tar", "w") as tar:
            for index, image in enumerate(images[shard::2]):
                tar.add(image, arcname=f"sample{shard}_{index:03d}.png")
    stream = load_unlabeled([str(tmp_path / "shard-*.tar"), corpus["parquet"]], seed=0)
    items = list(stream)
    assert len(items) == len(images) + NUM_PARQUET_IMAGES
    tar_bytes = {hashlib.sha1(path.read_bytes()).hexdigest() for path in images}
    assert tar_bytes <= {identity(item) for item in items}


def test_source_strings():
    assert UnlabeledSource.parse("hub:timm/imagenet-1k-wds@validation") == UnlabeledSource(
        "hub", "timm/imagenet-1k-wds", "validation"
    )
    assert UnlabeledSource.parse("org/openimages").kind == "hub"
    assert UnlabeledSource.parse("parquet:/data/x-*.parquet").location == "/data/x-*.parquet"
    assert UnlabeledSource.parse("/data/shards-{000..009}.tar").kind == "webdataset"


def test_two_sources_at_once_each_image_once_per_epoch(corpus):
    stream = load_unlabeled([corpus["folder"], corpus["parquet"]], probabilities=[0.7, 0.3], seed=0)
    items = [identity(item) for item in stream]
    assert len(items) == len(set(items)) == NUM_FOLDER_IMAGES + 1 + NUM_PARQUET_IMAGES
    stream.set_epoch(1)
    reshuffled = [identity(item) for item in stream]
    assert sorted(reshuffled) == sorted(items) and reshuffled != items


@pytest.mark.parametrize("sources", [["folder"], ["folder", "parquet"]])
def test_two_ranks_see_disjoint_parts_whose_union_is_the_corpus(corpus, sources):
    specs = [corpus[name] for name in sources]
    everything = {identity(item) for item in load_unlabeled(specs, seed=5)}
    ranks = [{identity(item) for item in load_unlabeled(specs, seed=5, rank=r, world_size=2)} for r in (0, 1)]
    assert not ranks[0] & ranks[1]
    assert ranks[0] | ranks[1] == everything
    assert abs(len(ranks[0]) - len(ranks[1])) <= 3


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


@pytest.mark.parametrize("column", ["image", "img"])
def test_streamed_images_are_the_stored_bytes_not_a_re_encoding(tmp_path, column):
    # A map over a decoding `Image()` column re-encodes each image (JPEG at quality 75): the stream must not map one.
    rng = np.random.default_rng(1)
    paths = []
    for index in range(3):
        paths.append(tmp_path / f"{index}.jpg")
        Image.fromarray(rng.integers(0, 255, (32, 40, 3), dtype=np.uint8)).save(paths[-1], quality=95)
    table = Dataset.from_dict({column: [str(p) for p in paths]}, features=Features({column: ImageFeature()}))
    write_parquet({"train": table}, tmp_path / "parquet")
    stream = load_unlabeled([f"parquet:{tmp_path / 'parquet' / 'data' / '*.parquet'}"], shuffle_buffer=0)
    assert [item["image"]["bytes"] for item in stream] == [path.read_bytes() for path in paths]
