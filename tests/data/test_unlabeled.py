"""`cskd_hf.data.unlabeled`: the unlabeled sources (folders, Parquet, WebDataset, several at once), each image once
per epoch, disjoint parts per rank, the stored bytes streamed as they are, and a Parquet source without images
named before streaming."""

import hashlib
import re
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from datasets import Dataset, Features
from datasets import Image as ImageFeature
from PIL import Image

from cskd_hf.data.prepare import write_parquet
from cskd_hf.data.unlabeled import UnlabeledSource, load_unlabeled
from tests.data.corpus import (
    CLASSES,
    IMAGES_PER_CLASS,
    NUM_FOLDER_IMAGES,
    NUM_PARQUET_IMAGES,
    batch_classes,
    iid_distinct_classes,
)
from tests.helpers import write_unlabeled_parquet
from tests.training.toy import write_toy_unlabeled


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


IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def test_unlabeled_parquet_without_images_is_named_before_streaming(tmp_path):
    photo = (write_toy_unlabeled(tmp_path / "photos", count=1, image_size=16) / "0000.png").read_bytes()
    shards = tmp_path / "shards"
    write_unlabeled_parquet(shards / "a.parquet", {"image": pa.array([{"bytes": photo, "path": None}], IMAGE)})
    assert next(iter(load_unlabeled([f"parquet:{shards}/*.parquet"])))["image"]["bytes"] == photo

    bad = write_unlabeled_parquet(shards / "b.parquet", {"caption": ["a photo"]})
    with pytest.raises(ValueError, match=rf"{re.escape(str(bad))}: no image column among \['caption'\]"):
        load_unlabeled([f"parquet:{shards}/*.parquet"])
    write_unlabeled_parquet(bad, {"image": [7]})
    with pytest.raises(ValueError, match=rf"{re.escape(str(bad))}: column image holds Value\('int64'\), not encoded"):
        load_unlabeled([f"{shards}/*.parquet"])
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match=f"{re.escape(str(bad))}: not a readable Parquet file"):
        load_unlabeled([f"{shards}/*.parquet"])


@pytest.mark.parametrize("world_size", [1, 2])
def test_a_folder_of_class_folders_streams_iid_batches_on_every_process(class_folders, world_size):
    """ImageNet's layout (class folders, listed in class order): every file is a data source of the stream, so its
    batches mix classes as a random draw does, on each of 1 or 2 processes, each epoch (contiguous shards of the
    sorted list gave 23.6 distinct classes per batch of 32 here, against 29.7 for a random draw)."""
    expected = iid_distinct_classes()
    seen_per_epoch = {0: [], 1: []}
    for rank in range(world_size):
        stream = load_unlabeled([str(class_folders)], seed=0, rank=rank, world_size=world_size)
        for epoch in (0, 1):
            stream.set_epoch(epoch)
            mean, names = batch_classes(stream)
            assert abs(mean - expected) <= 0.1 * expected, (rank, epoch, mean, expected)
            seen_per_epoch[epoch].append(names)
    for per_rank in seen_per_epoch.values():  # disjoint parts whose union is the corpus
        assert sorted(name for names in per_rank for name in names) == sorted(set(sum(per_rank, [])))
        assert sum(map(len, per_rank)) == CLASSES * IMAGES_PER_CLASS
    assert seen_per_epoch[0][0] != seen_per_epoch[1][0]  # another permutation each epoch
