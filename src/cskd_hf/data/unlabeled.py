"""The unlabeled corpus: images from several sources at once, streamed, shuffled and split across processes.

A source is given as a string:

- `folder:PATH` or a plain folder path: every image file below it (recursively);
- `parquet:GLOB` or a path / glob ending in `.parquet` (e.g. the output of `cskd data prepare`);
- `webdataset:GLOB` or a path / glob ending in `.tar`: WebDataset shards;
- `hub:ORG/NAME` or a plain Hub dataset id (optionally `hub:ORG/NAME@SPLIT`), for users online;
- a folder written by `cskd data shard` (its `shards.json` says the format): its `train` shards.

Order: the stream is i.i.d. over the corpus where the source allows. A folder's files are each a data source of the
stream, so `datasets`' shuffle permutes the whole file list by (seed, epoch), the same on every process, before
processes and DataLoader workers take their parts: a batch mixes the folder's classes (ImageNet's 1,000 class folders)
as a random draw would, where contiguous shards of the sorted list held about 15 classes each. Parquet, WebDataset and
Hub sources are read as their files are ordered: their shuffle is the shard order plus a buffer of `shuffle_buffer`
images (1,000 by default, against shards of about 2,000 rows with `cskd data shard`), so a source written in class
order stays correlated within a buffer; write it with `cskd data shard`, which shuffles globally by default.

Images stay encoded (`Image(decode=False)`) in the stream: they are decoded where they are used (in DataLoader workers,
by `cskd_hf.data.batching`), so an undecodable image is skipped and counted there instead of stopping the stream.
"""

import glob
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from datasets import Features, IterableDataset, Value, interleave_datasets, load_dataset
from datasets import Image as ImageFeature
from datasets.distributed import split_dataset_by_node

from .images import find_images
from .prepare import parquet_features, shard_plan

logger = logging.getLogger(__name__)

SOURCE_KINDS = ("folder", "parquet", "webdataset", "hub")
WEBDATASET_IMAGE_KEYS = ("jpg", "jpeg", "png", "webp")
IMAGE_FEATURES = Features({"image": ImageFeature(decode=False)})


@dataclass(frozen=True)
class UnlabeledSource:
    kind: str
    location: str
    split: str = "train"

    @classmethod
    def parse(cls, spec: str) -> "UnlabeledSource":
        """Read a source string (see the module docstring); the kind is inferred when no `kind:` prefix is given."""
        kind, _, rest = spec.partition(":")
        if kind in SOURCE_KINDS and rest:
            location = rest
        else:
            kind, location = _infer_kind(spec), spec
        split = "train"
        if kind == "hub" and "@" in location:
            location, split = location.rsplit("@", 1)
        return cls(kind, location, split)


def _infer_kind(location: str) -> str:
    if Path(location).is_dir():
        return "shards" if shard_plan(location) else "folder"
    if location.endswith(".parquet"):
        return "parquet"
    if location.endswith(".tar"):
        return "webdataset"
    if os.path.exists(location) or "*" in location:
        raise ValueError(f"{location}: cannot tell the kind of source; prefix it with one of {SOURCE_KINDS}")
    return "hub"


def open_source(source: UnlabeledSource) -> IterableDataset:
    """One source as a stream with a single column `image` of encoded images."""
    if source.kind == "folder":
        paths = tuple(str(path) for path in find_images([source.location]))
        if not paths:
            raise FileNotFoundError(f"{source.location}: no image files found")
        # One data source per file (the list of indices), the paths a tuple `datasets` does not split: its shuffle
        # then permutes every file by (seed, epoch).
        sources = {"indices": list(range(len(paths))), "paths": paths}
        return IterableDataset.from_generator(folder_images, features=IMAGE_FEATURES, gen_kwargs=sources)
    if source.kind == "shards":
        return open_source(shard_folder_source(source.location))
    if source.kind == "parquet":
        # Each local file's schema first: a file without images gets an error naming it, not a failure mid-stream.
        for path in sorted(glob.glob(source.location)):
            image_column(parquet_features(Path(path)), path)
        stream = load_dataset("parquet", data_files=source.location, split="train", streaming=True)
    elif source.kind == "webdataset":
        stream = load_dataset("webdataset", data_files=source.location, split="train", streaming=True)
    elif source.kind == "hub":
        stream = load_dataset(source.location, split=source.split, streaming=True)
    else:
        raise ValueError(f"unknown source kind {source.kind!r}; choose from {SOURCE_KINDS}")
    column = image_column(stream.features or {}, f"{source.kind}:{source.location}")
    # Cast first: `rename_columns` is a map, and a map over an `Image()` column decodes every image and re-encodes it
    # (as JPEG at quality 75 for a JPEG): the stream then held other, degraded bytes, at the cost of a decode.
    stream = stream.cast_column(column, ImageFeature(decode=False)).select_columns([column])
    return stream.rename_columns({column: "image"}) if column != "image" else stream


def folder_images(indices: list[int], paths: tuple[str, ...]) -> Iterator[dict]:
    """The folder stream's generator: the files of its share of the data sources, encoded (by path)."""
    for index in indices:
        yield {"image": {"path": paths[index], "bytes": None}}


def shard_folder_source(folder: str) -> UnlabeledSource:
    """The `train` shards of a `cskd data shard` folder, as the Parquet or WebDataset source they are."""
    plan = shard_plan(folder)
    if "train" not in plan["splits"]:
        raise ValueError(f"{folder}: no train split among its shards' {list(plan['splits'])}")
    layout = "data/train-*-of-{:05d}.parquet" if plan["format"] == "parquet" else "train-*-of-{:05d}.tar"
    return UnlabeledSource(plan["format"], str(Path(folder) / layout.format(plan["splits"]["train"]["shards"])))


def image_column(features: Features, where: str) -> str:
    """The column of encoded images: one of type `Image`, else the first of the usual names that holds bytes, a path
    or `{bytes, path}`."""
    for name, feature in features.items():
        if isinstance(feature, ImageFeature):
            return name
    for name in ("image", "img", *WEBDATASET_IMAGE_KEYS):
        if name in features:
            feature = features[name]
            if isinstance(feature, Value) and feature.dtype in ("binary", "large_binary", "string", "large_string"):
                return name
            if isinstance(feature, dict) and {"bytes", "path"} <= feature.keys():
                return name
            raise ValueError(f"{where}: column {name} holds {feature}, not encoded images (bytes or a path)")
    raise ValueError(f"{where}: no image column among {list(features)}")


def load_unlabeled(
    sources: list[str],
    probabilities: list[float] | None = None,
    seed: int = 0,
    shuffle_buffer: int = 1000,
    rank: int = 0,
    world_size: int = 1,
) -> IterableDataset:
    """Stream images from several sources at once, interleaved, shuffled and split between processes.

    Every process must call this with the same `seed`: the interleaving, the shuffle and the split between ranks are
    deterministic given the seed and the epoch (`stream.set_epoch`), so ranks see disjoint parts whose union is the
    whole corpus, and a resumed run sees the same stream.

    Args:
        sources: source strings (see the module docstring).
        probabilities: sampling probability of each source (the paper mixes ImageNet and OpenImages); by default
            sources alternate. Each image comes once per epoch: an exhausted source drops out of the mix.
        shuffle_buffer: size of the shuffle buffer (0: no shuffling).
        rank: this process's index (`accelerator.process_index`).
        world_size: number of processes (`accelerator.num_processes`).
    """
    if not sources:
        raise ValueError("load_unlabeled needs at least one source")
    if probabilities is not None and len(probabilities) != len(sources):
        raise ValueError(f"{len(probabilities)} probabilities for {len(sources)} sources")
    streams = [open_source(UnlabeledSource.parse(spec)) for spec in sources]
    stream = streams[0]
    if len(streams) > 1:
        strategy = "all_exhausted_without_replacement"  # every image once per epoch
        stream = interleave_datasets(streams, probabilities, seed=seed, stopping_strategy=strategy)
    if shuffle_buffer:
        stream = stream.shuffle(seed=seed, buffer_size=shuffle_buffer)
    # A folder stream's data sources are its files, which every process lists: keeping one in `world_size` of them
    # reads paths, not images.
    bytes_sources = any(UnlabeledSource.parse(spec).kind != "folder" for spec in sources)
    if world_size > 1:
        if stream.num_shards % world_size and bytes_sources:
            logger.warning(
                f"the unlabeled stream has {stream.num_shards} shards, not a multiple of {world_size} processes: "
                "every process reads the whole stream and keeps one image in "
                f"{world_size} (correct, but each reads {world_size}x the data)"
            )
        stream = split_dataset_by_node(stream, rank=rank, world_size=world_size)
    return stream


__all__ = [
    "UnlabeledSource",
    "folder_images",
    "image_column",
    "load_unlabeled",
    "open_source",
    "shard_folder_source",
]
