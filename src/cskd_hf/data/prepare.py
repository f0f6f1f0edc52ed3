"""`cskd data prepare`: a benchmark's original files to Parquet shards with a dataset card.

Parquet is the form `datasets` streams well and `push_to_hub` uploads. The images are embedded in the shards, so the
output holds copies of them: AVA's terms and PARA's licence forbid redistributing them, and the card says so. Keep
such a folder to yourself (or in a private repository).
"""

import json
import math
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import DatasetDict, Features, load_dataset
from datasets.table import embed_table_storage
from huggingface_hub import DatasetCard, DatasetCardData

from .aadb import load_aadb
from .ava import load_ava
from .labeled import bin_scores_of, check_labeled_features
from .para import load_para

LOADERS = {"ava": load_ava, "aadb": load_aadb, "para": load_para}
DROPPED_REPORT = "dropped_images.tsv"
SHARD_PLAN_FILE = "shards.json"  # written by `cskd data shard` (data/shard.py)
CITATIONS = {
    "ava": "Murray, Marchesotti, Perronnin. AVA: A large-scale database for aesthetic visual analysis. CVPR 2012.",
    "aadb": "Kong, Shen, Lin, Mech, Fowlkes. Photo aesthetics ranking network with attributes and content "
    "adaptation. ECCV 2016.",
    "para": "Yang et al. Personalized image aesthetics assessment with rich attributes. CVPR 2022.",
}


def write_parquet(dataset_dict: DatasetDict, out_dir: str | os.PathLike, rows_per_shard: int = 2000) -> list[Path]:
    """Write each split as `data/<split>-NNNNN-of-NNNNN.parquet` with the images embedded."""
    out_dir = Path(out_dir)
    (out_dir / "data").mkdir(parents=True, exist_ok=True)
    written = []
    for split, dataset in dataset_dict.items():
        num_shards = max(1, math.ceil(len(dataset) / rows_per_shard))
        for index in range(num_shards):
            shard = dataset.shard(num_shards, index, contiguous=True)
            # What `push_to_hub` does: replace image paths by the files' bytes.
            shard = shard.with_format("arrow").map(embed_table_storage, batched=True, keep_in_memory=True)
            path = out_dir / "data" / f"{split}-{index:05d}-of-{num_shards:05d}.parquet"
            shard.with_format(None).to_parquet(str(path))
            written.append(path)
    return written


def dataset_card(name: str, dataset_dict: DatasetDict, source: str, num_dropped: int) -> DatasetCard:
    bins = bin_scores_of(dataset_dict)
    card_data = DatasetCardData(
        pretty_name=f"{name.upper()} (prepared by cskd-hf)",
        license="other",
        task_categories=["image-classification"],
        tags=["image-aesthetics", "cskd"],
        configs=[
            {
                "config_name": "default",
                "data_files": [{"split": split, "path": f"data/{split}-*.parquet"} for split in dataset_dict],
            }
        ],
    )
    sizes = "\n".join(f"| {split} | {len(dataset):,} |" for split, dataset in dataset_dict.items())
    content = f"""---
{card_data.to_yaml()}
---

# {name.upper()}, prepared by cskd-hf

Made by `cskd data prepare {name}` from the original files in `{source}`.

**The images are embedded in these files. {name.upper()}'s terms do not allow redistributing them: keep this dataset
private.**

| split | images |
|---|---|
{sizes}

{num_dropped} listed images could not be read (missing or corrupt) and were dropped; see `{DROPPED_REPORT}`.

## Columns
- `image`: the photograph.
- `image_id`: the dataset's own id.
- `distribution`: the votes over the {len(bins)} score bins, normalised to sum 1.
- `bin_scores`: the score of each bin, {bins} (the same on every row, so the scale travels with the data).
- `mean_score`: the mean score on the dataset's scale.
- `num_votes`: the number of votes (-1 where unknown).
- `split`: the split the row belongs to.

Load it with `datasets.load_dataset("<this folder or repo>")`, or stream it with `streaming=True`.

## Citation
{CITATIONS.get(name, "")}
"""
    return DatasetCard(content)


def prepare(name: str, root: str | os.PathLike, out_dir: str | os.PathLike, **loader_kwargs) -> DatasetDict:
    """Load benchmark `name` from its original files in `root` and write it to `out_dir` as Parquet with a card."""
    if name not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(LOADERS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = out_dir / DROPPED_REPORT
    dataset_dict = LOADERS[name](root, dropped_report=report, **loader_kwargs)
    write_parquet(dataset_dict, out_dir)
    num_dropped = sum(1 for _ in report.open(encoding="utf-8")) - 1
    dataset_card(name, dataset_dict, str(root), num_dropped).save(out_dir / "README.md")
    return dataset_dict


def load_labeled(spec: str | os.PathLike, **loader_kwargs) -> DatasetDict:
    """A labeled dataset from a string: `ava:ROOT`, `aadb:ROOT` or `para:ROOT` read the original files; anything else
    is a folder written by `prepare` or a Hub dataset repo of the same layout."""
    kind, separator, root = str(spec).partition(":")
    if separator and kind in LOADERS:
        return LOADERS[kind](root, **loader_kwargs)
    shard_plan(spec)  # a `cskd data shard` folder must be complete
    shards = sorted(Path(spec).glob("data/*-of-*.parquet")) if Path(spec).is_dir() else []
    if shards:
        # Explicit absolute file lists: `load_dataset(folder)` can serve another folder's cached copy when both have
        # the same name and layout.
        data_files: dict[str, list[str]] = {}
        for shard in shards:
            check_labeled_features(parquet_features(shard), str(shard))
            data_files.setdefault(shard.name.split("-")[0], []).append(str(shard.resolve()))
        return load_dataset("parquet", data_files=data_files)
    dataset_dict = load_dataset(str(spec))
    for split, dataset in dataset_dict.items():
        check_labeled_features(dataset.features, f"{spec} (split {split})")
    return dataset_dict


def shard_plan(folder: str | os.PathLike) -> dict | None:
    """The plan `cskd data shard` wrote into `folder` (`shards.json`), or None when `folder` holds no shards.

    Raises:
        ValueError: the shards are not all written yet (an interrupted run): reading them would train on a part.
    """
    plan_file = Path(folder) / SHARD_PLAN_FILE
    if not plan_file.is_file():
        return None
    plan = json.loads(plan_file.read_text())
    if not plan.get("complete"):
        raise ValueError(f"{folder}: its shards are not all written yet; run the same `cskd data shard` again")
    return plan


def parquet_features(path: Path) -> Features:
    """A Parquet file's columns as `datasets` features, from its footer; a `ValueError` naming an unreadable file."""
    try:
        return Features.from_arrow_schema(pq.read_schema(path))
    except (pa.ArrowException, OSError) as error:
        raise ValueError(f"{path}: not a readable Parquet file ({error})") from None


__all__ = [
    "LOADERS",
    "dataset_card",
    "load_labeled",
    "parquet_features",
    "prepare",
    "shard_plan",
    "write_parquet",
]
