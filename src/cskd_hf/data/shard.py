"""`cskd data shard`: any source the trainers read, rewritten as training shards at the training resolution.

SKD decodes 16 images for every labeled one, and CFA reads millions: decoding AVA-size photos (500-800 px) or
OpenImages JPEGs (~1024 px) every epoch costs more CPU than the GPU step. A shard stores each image already resized as
the model's image processor resizes it (256 x 256 by default: the paper resizes to 256 x 256 before the random 224
crop), re-encoded, so an epoch decodes 256-px images and the processor's resize becomes a no-op.

Why the processor's resize and not a short side of 256: with a lossless format (`--image-format png`) a batch read from
the shards is bit-identical to the same batch read from the source (the random crop and flip are drawn the same way on
the same pixels); the cost is that shards serve models with that resize only (another resolution or `shortest_edge`
resizing needs new shards, and a short-side shard would be resized a second time, no longer identical to the source).
The default JPEG quality 95 keeps the pixels within a few grey levels for a quarter of PNG's bytes.

Layout of `OUT` (as `cskd data prepare` writes, so `--dataset OUT` and `--unlabeled OUT` read it as they are):

- Parquet: `data/<split>-NNNNN-of-NNNNN.parquet` with `image` (bytes), `image_id`, and, for a labeled source, the
  labeled columns (`distribution`, `mean_score`, ...).
- WebDataset (unlabeled sources only: labeled training reads its dataset with random access, which tars lack):
  `<split>-NNNNN-of-NNNNN.tar`, each image as `<index>.<ext>` with `<index>.json` holding its `image_id`.
- `shards.json`, the plan (source, counts, resize, format), and `skipped_images.tsv`, the images that could not be
  read.

The number of shards of a split is a multiple of `--shard-multiple` (64 by default) so that any number of processes
that divides it, 8 GPUs with 8 DataLoader workers included, read disjoint shards. Shards are written by a pool of
processes, each to a temporary name then renamed, so a re-run of the same command skips the shards already written.
An unlabeled source is written in a global random order (`--seed`, recorded in `shards.json`; `--no-shuffle` keeps the
source's order), so that each shard is a random draw of the corpus.
"""

import csv
import io
import json
import logging
import math
import multiprocessing
import os
import tarfile
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import datasets
import numpy as np
from datasets import Dataset, DatasetDict, Features, Value, load_dataset
from datasets import Image as ImageFeature
from PIL import Image
from tqdm.auto import tqdm

from ..models.cskd import CSKDImageProcessor
from .images import ImageReadError, decode_image, find_images
from .prepare import DROPPED_REPORT, LOADERS, SHARD_PLAN_FILE, load_labeled, shard_plan
from .unlabeled import UnlabeledSource, image_column, shard_folder_source

logger = logging.getLogger(__name__)

FORMATS = ("parquet", "webdataset")
IMAGE_FORMATS = {"jpeg": "jpg", "png": "png", "webp": "webp"}
SKIPPED_REPORT = "skipped_images.tsv"
LABEL_COLUMNS = ("distribution", "mean_score", "num_votes", "bin_scores", "split")


@dataclass
class ShardPlan:
    """What `shard` writes; a re-run must find the same plan in `OUT/shards.json` to resume."""

    source: str
    labeled: bool
    format: str
    image_format: str
    quality: int
    resize: dict  # the image processor's resize: `resize_size`, `resize_mode`, `interpolation`
    splits: dict[str, dict] = field(default_factory=dict)  # split -> {"images": n, "shards": k}
    shuffle_seed: int | None = None  # the seed of the global shuffle of an unlabeled source's images (None: in order)


def read_source(spec: str, dropped_report: Path | None = None) -> tuple[DatasetDict, bool]:
    """The source as map-style splits with an `image` column of encoded images and an `image_id`, and whether it is
    labeled: `ava:`/`aadb:`/`para:ROOT` and `cskd data prepare` folders are; image folders, Parquet files, WebDataset
    tars and Hub datasets of images are read as an unlabeled `train` split. The benchmark loaders list the images
    missing on disk in `dropped_report`."""
    kind, separator, root = spec.partition(":")
    if separator and kind in LOADERS:
        # Every image is decoded once while sharding: checking it beforehand would decode it twice.
        if dropped_report is not None:
            dropped_report.parent.mkdir(parents=True, exist_ok=True)
        return _encoded(load_labeled(spec, verify="exists", dropped_report=dropped_report)), True
    plan = shard_plan(spec) if Path(spec).is_dir() else None
    if plan["labeled"] if plan else Path(spec).is_dir() and list(Path(spec).glob("data/*-of-*.parquet")):
        return _encoded(load_labeled(spec)), True
    source = UnlabeledSource.parse(spec)
    if source.kind == "shards":
        source = shard_folder_source(source.location)
    if source.kind == "folder":
        paths = find_images([source.location])
        if not paths:
            raise FileNotFoundError(f"{source.location}: no image files found")
        ids = [str(path.relative_to(source.location)) for path in paths]
        features = Features({"image": ImageFeature(decode=False), "image_id": Value("string")})
        table = Dataset.from_dict({"image": list(map(str, paths)), "image_id": ids}, features)
        return DatasetDict({"train": table}), False
    if source.kind == "hub":
        table = load_dataset(source.location, split=source.split)
    else:
        table = load_dataset(source.kind, data_files=source.location, split="train")
    column = image_column(table.features, spec)
    table = table.cast_column(column, ImageFeature(decode=False))
    if "image_id" not in table.column_names:
        table = table.add_column("image_id", image_ids(table))
    table = table.select_columns([column, "image_id"]).rename_columns({column: "image"} if column != "image" else {})
    return DatasetDict({"train": table}), False


def image_ids(table: Dataset) -> list[str]:
    """Ids for a table without an `image_id` column: a WebDataset sample's own (its JSON's `image_id`, as `shard`
    writes it, else its key), else the row number."""
    if isinstance(table.features.get("json"), dict) and "image_id" in table.features["json"]:
        return [str(entry["image_id"]) for entry in table["json"]]
    if "__key__" in table.column_names:
        return table["__key__"]
    return [f"{index:09d}" for index in range(len(table))]


def _encoded(dataset_dict: DatasetDict) -> DatasetDict:
    return DatasetDict(
        {split: data.cast_column("image", ImageFeature(decode=False)) for split, data in dataset_dict.items()}
    )


def number_of_shards(num_images: int, rows_per_shard: int, multiple: int) -> int:
    """Enough shards of at most `rows_per_shard` images, rounded up to a multiple of `multiple`, never more than the
    images (a split of fewer images than `multiple` gets one shard per image)."""
    wanted = math.ceil(num_images / rows_per_shard)
    return max(1, min(num_images, math.ceil(wanted / multiple) * multiple))


def shard_bounds(num_images: int, index: int, count: int) -> tuple[int, int]:
    """The rows `[start, end)` of shard `index` of `count`, as `Dataset.shard(contiguous=True)` cuts them."""
    size, remainder = divmod(num_images, count)
    start = index * size + min(index, remainder)
    return start, start + size + (index < remainder)


def shard_name(split: str, index: int, count: int, fmt: str) -> str:
    name = f"{split}-{index:05d}-of-{count:05d}"
    return f"data/{name}.parquet" if fmt == "parquet" else f"{name}.tar"


class ResizedEncoder:
    """Decodes an encoded image, resizes it as `image_processor` does before cropping, and re-encodes it."""

    def __init__(self, image_processor: CSKDImageProcessor, image_format: str, quality: int):
        self.resize = image_processor.resize_transform()
        self.image_format = image_format
        self.quality = quality

    def __call__(self, encoded: dict) -> bytes:
        image = decode_image(encoded.get("bytes"), encoded.get("path"))
        resized = self.resize(image)
        if not isinstance(resized, Image.Image):  # a uint8 (3, H, W) tensor
            resized = Image.fromarray(np.ascontiguousarray(resized.permute(1, 2, 0).numpy()))
        buffer = io.BytesIO()
        options = {"quality": self.quality} if self.image_format in ("jpeg", "webp") else {}
        if self.image_format == "jpeg":
            options["subsampling"] = 0  # full-resolution colour (4:4:4): PIL's default 4:2:0 halves it
        if self.image_format == "webp" and self.quality >= 100:
            options = {"lossless": True}
        resized.save(buffer, format=self.image_format.upper(), **options)
        return buffer.getvalue()


def write_shard(
    out_dir: Path, plan: ShardPlan, split: str, rows: Dataset, index: int, count: int, first_position: int,
    image_processor: dict,
) -> tuple[int, list[tuple[str, str]]]:  # fmt: skip
    """Write `rows` as shard `index` of `count` of a split (`first_position`: its first row's index in the split);
    returns the number of images written and `(image id, error)` for each one skipped."""
    encode = ResizedEncoder(CSKDImageProcessor(**image_processor), plan.image_format, plan.quality)
    extension = IMAGE_FORMATS[plan.image_format]
    encoded, skipped = [], []
    for row in rows:
        try:
            data = encode(row["image"])
        except ImageReadError as error:
            skipped.append((row["image_id"], str(error)))
            continue
        encoded.append({**row, "image": {"bytes": data, "path": f"{row['image_id']}.{extension}"}})
    target = out_dir / shard_name(split, index, count, plan.format)
    partial = target.with_name(f".partial-{os.getpid()}-{target.name}")
    if plan.format == "parquet":
        features = Features({**rows.features, "image": ImageFeature()})
        columns = {name: [row[name] for row in encoded] for name in features}  # also right for an empty shard
        Dataset.from_dict(columns, features=features).to_parquet(str(partial))
    else:
        with tarfile.open(partial, "w") as tar:
            for position, row in enumerate(encoded, start=first_position):
                key = f"{position:09d}"  # WebDataset keys hold no dot; the image's own id goes into the JSON
                _add_member(tar, f"{key}.{extension}", row["image"]["bytes"])
                _add_member(tar, f"{key}.json", json.dumps({"image_id": row["image_id"]}).encode())
    # The report first, then the shard under its final name: a shard that exists is complete with its report.
    report = out_dir / "skipped" / f"{split}-{index:05d}.tsv"
    report.write_text("".join(f"{image_id}\t{error}\n" for image_id, error in skipped), encoding="utf-8")
    os.replace(partial, target)
    return len(encoded), skipped


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def shard(
    source: str,
    out_dir: str | os.PathLike,
    image_processor: CSKDImageProcessor | None = None,
    fmt: str = "parquet",
    image_format: str = "jpeg",
    quality: int = 95,
    rows_per_shard: int = 2000,
    shard_multiple: int = 64,
    num_workers: int | None = None,
    progress: bool = True,
    shuffle: bool = True,
    seed: int = 0,
) -> ShardPlan:
    """Write `source` as training shards into `out_dir` (see the module docstring); resumes a run of the same plan.

    Args:
        image_processor: the resize to store (that of the model to train); default `CSKDImageProcessor()`, 256 x 256.
        fmt: `"parquet"` or `"webdataset"` (unlabeled sources).
        image_format: `"jpeg"`, `"png"` (lossless: batches identical to the source's) or `"webp"`.
        num_workers: processes writing shards; default one per core.
        shuffle: write an unlabeled source's images in a global random order (`seed`), the WebDataset convention, so
            that every shard, and so every stream batch, holds a random draw of the corpus (a folder of class folders
            would otherwise give shards of a few classes each). Labeled splits keep their order: the trainers read
            them with random access and shuffle them every epoch, and a labeled shard then trains bit-identically to
            its source.

    Returns:
        The plan, with each split's images and shards; unreadable images are skipped and listed in
        `out_dir/skipped_images.tsv`.
    """
    image_processor = _checked_options(fmt, image_format, rows_per_shard, shard_multiple, image_processor)
    out_dir = Path(out_dir)
    dataset_dict, labeled = read_source(source, dropped_report=out_dir / DROPPED_REPORT)
    if labeled and fmt == "webdataset":
        raise ValueError(f"{source} is labeled: labeled shards are Parquet (--dataset reads them with random access)")
    resize = {key: getattr(image_processor, key) for key in ("resize_size", "resize_mode", "interpolation")}
    shuffle_seed = seed if shuffle and not labeled else None
    if shuffle_seed is not None:
        dataset_dict = DatasetDict({split: table.shuffle(seed=shuffle_seed) for split, table in dataset_dict.items()})
    plan = ShardPlan(source, labeled, fmt, image_format, quality, resize, shuffle_seed=shuffle_seed)
    for split, dataset in dataset_dict.items():
        count = number_of_shards(len(dataset), rows_per_shard, shard_multiple)
        plan.splits[split] = {"images": len(dataset), "shards": count}
    _start_or_resume(out_dir, plan)
    _write_missing_shards(out_dir, plan, dataset_dict, image_processor, num_workers, progress)
    _finish(out_dir, plan)
    return plan


def _checked_options(
    fmt: str, image_format: str, rows_per_shard: int, shard_multiple: int, image_processor: CSKDImageProcessor | None
) -> CSKDImageProcessor:
    """Raise a `ValueError` for options `shard` cannot write; returns the image processor to store (the default one
    when `image_processor` is None)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown shard format {fmt!r}; choose from {', '.join(FORMATS)}")
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"unknown image format {image_format!r}; choose from {', '.join(IMAGE_FORMATS)}")
    if rows_per_shard < 1 or shard_multiple < 1:
        raise ValueError("rows_per_shard and shard_multiple must be at least 1")
    image_processor = image_processor or CSKDImageProcessor()
    if image_processor.resize_input == "float":
        raise ValueError("shards store 8-bit images: a processor that resizes float pixels cannot be sharded")
    return image_processor


def _write_missing_shards(
    out_dir: Path,
    plan: ShardPlan,
    dataset_dict: DatasetDict,
    image_processor: CSKDImageProcessor,
    num_workers: int | None,
    progress: bool,
) -> None:
    """Write the shards of `plan` that `out_dir` does not hold yet, with `num_workers` processes (default one per
    core), and log each image skipped."""
    tasks = [
        (split, index, info["shards"])
        for split, info in plan.splits.items()
        for index in range(info["shards"])
        if not (out_dir / shard_name(split, index, info["shards"], plan.format)).exists()
    ]
    total = sum(info["images"] for info in plan.splits.values())
    remaining = sum(len(range(*shard_bounds(plan.splits[split]["images"], i, k))) for split, i, k in tasks)
    processor_kwargs = image_processor.to_dict()
    processor_kwargs.pop("image_processor_type", None)
    num_workers = min(num_workers or os.cpu_count() or 1, max(1, len(tasks)))
    bar = tqdm(total=total, initial=total - remaining, unit="img", desc="sharding", disable=not progress)
    pool = _worker_pool(num_workers)
    with bar, pool:
        futures = []
        for split, index, count in tasks:
            dataset = dataset_dict[split]
            start, end = shard_bounds(len(dataset), index, count)
            rows = dataset.select(range(start, end))
            if not dataset.cache_files:  # an in-memory table (paths, labels): send this shard's rows, not all
                rows = Dataset.from_dict(rows[:], features=rows.features)
            futures.append(pool.submit(write_shard, out_dir, plan, split, rows, index, count, start, processor_kwargs))
        for future in as_completed(futures):
            written, skipped = future.result()
            bar.update(written + len(skipped))
            for image_id, error in skipped:
                logger.warning(f"skipped {image_id}: {error}")


def _worker_pool(num_workers: int) -> "ProcessPoolExecutor | InProcess":
    """A pool of `num_workers` spawned processes, or, for one worker, this process itself (a pool costs seconds to
    start)."""
    if num_workers <= 1:
        return InProcess()
    # Spawned, not forked: this process has torch's and datasets' threads running, which forked children can
    # deadlock on.
    return ProcessPoolExecutor(
        num_workers, mp_context=multiprocessing.get_context("spawn"), initializer=datasets.disable_progress_bars
    )


class InProcess:
    """The part of `ProcessPoolExecutor` that `shard` uses, run in this process."""

    def __enter__(self) -> "InProcess":
        return self

    def __exit__(self, *exc_info) -> None:
        return None

    def submit(self, function, *args) -> Future:
        future = Future()
        future.set_result(function(*args))
        return future


def _start_or_resume(out_dir: Path, plan: ShardPlan) -> None:
    plan_file = out_dir / SHARD_PLAN_FILE
    if plan_file.exists():
        found = json.loads(plan_file.read_text())
        found.pop("complete", None)
        found.setdefault("shuffle_seed", None)  # written before shards were shuffled: in the source's order
        for info in found.get("splits", {}).values():
            info.pop("skipped", None)
        if found != json.loads(json.dumps(asdict(plan))):
            raise ValueError(
                f"{out_dir} holds shards of another plan ({plan_file}): the source, its size, the resize, the "
                "format or the shuffle (`shuffle_seed`: --seed, --no-shuffle) differ; write into a new folder"
            )
        logger.info(f"resuming the shards in {out_dir}")
        for partial in [*out_dir.glob(".partial-*"), *out_dir.glob("data/.partial-*")]:
            partial.unlink()  # a killed run's unfinished shard
    (out_dir / "data" if plan.format == "parquet" else out_dir).mkdir(parents=True, exist_ok=True)
    (out_dir / "skipped").mkdir(exist_ok=True)
    plan_file.write_text(json.dumps({**asdict(plan), "complete": False}, indent=2))


def _finish(out_dir: Path, plan: ShardPlan) -> None:
    """Gather the shards' reports into one, count the skipped images per split, and mark the plan complete."""
    with open(out_dir / SKIPPED_REPORT, "w", newline="", encoding="utf-8") as report:
        writer = csv.writer(report, delimiter="\t", lineterminator="\n")
        writer.writerow(["split", "image_id", "error"])
        for split, info in plan.splits.items():
            info["skipped"] = 0
            for index in range(info["shards"]):
                lines = (out_dir / "skipped" / f"{split}-{index:05d}.tsv").read_text(encoding="utf-8").splitlines()
                writer.writerows([split, *line.split("\t", 1)] for line in lines)
                info["skipped"] += len(lines)
    (out_dir / SHARD_PLAN_FILE).write_text(json.dumps({**asdict(plan), "complete": True}, indent=2))


__all__ = ["FORMATS", "IMAGE_FORMATS", "ShardPlan", "number_of_shards", "read_source", "shard", "shard_bounds"]
