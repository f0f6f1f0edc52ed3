"""What the AVA, AADB and PARA loaders share: the columns, the bin layout, dropping unreadable images, splits, Parquet.

Every labeled dataset has the columns `image` (lazily decoded), `image_id`, `distribution` (the vote histogram over the
dataset's bins, normalised to sum 1), `mean_score` (on the dataset's own scale), `num_votes` (-1 where unknown),
`bin_scores` (the score value of each bin, the same on every row so it travels with the data through Parquet,
streaming and the Hub) and `split`.
"""

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from datasets import Dataset, DatasetDict, Features, LargeList, List, Value
from datasets import Image as ImageFeature
from scipy.special import ndtr

from .images import ImageReadError, open_image

logger = logging.getLogger(__name__)

VERIFY_MODES = ("decode", "exists", "none")


@dataclass
class LabeledImage:
    """One labeled image as a loader reads it from the original files."""

    image_path: str
    image_id: str
    votes: np.ndarray  # per-bin vote counts, or weights when only a distribution is known
    mean_score: float
    num_votes: int = -1


def labeled_features(num_bins: int) -> Features:
    return Features(
        {
            "image": ImageFeature(),
            "image_id": Value("string"),
            "distribution": List(Value("float32"), length=num_bins),
            "mean_score": Value("float32"),
            "num_votes": Value("int32"),
            "bin_scores": List(Value("float32"), length=num_bins),
            "split": Value("string"),
        }
    )


def check_labeled_features(features: Features, where: str) -> None:
    """Raise a `ValueError` naming `where` (a file or dataset) unless its columns are a labeled dataset's: an image,
    a vote distribution and the bins' scores of the same length, and a mean score (`labeled_features`)."""
    expected = "columns image, distribution, mean_score, bin_scores, as `cskd data prepare` writes them"
    missing = [name for name in ("image", "distribution", "mean_score", "bin_scores") if name not in features]
    if missing:
        raise ValueError(
            f"{where}: no column {', '.join(missing)} among {list(features)}; a labeled dataset has {expected}"
        )
    image = features["image"]
    if not (isinstance(image, ImageFeature) or (isinstance(image, dict) and {"bytes", "path"} <= image.keys())):
        raise ValueError(f"{where}: column image holds {image}, not images")
    lengths = []
    for name in ("distribution", "bin_scores"):
        column = features[name]
        if not (isinstance(column, (List, LargeList)) and _is_number(column.feature)):
            raise ValueError(f"{where}: column {name} holds {column}, not a list of numbers per image")
        lengths.append(getattr(column, "length", -1))
    if -1 not in lengths and lengths[0] != lengths[1]:
        raise ValueError(f"{where}: {lengths[0]} values in distribution but {lengths[1]} bins in bin_scores")
    if not _is_number(features["mean_score"]):
        raise ValueError(f"{where}: column mean_score holds {features['mean_score']}, not numbers")


def _is_number(feature) -> bool:
    return isinstance(feature, Value) and (
        feature.dtype.startswith(("float", "int", "uint")) or feature.dtype == "double"
    )


def bin_scores_of(dataset) -> list[float]:
    """The score value of each bin of a labeled dataset (map-style or streaming), to configure a model with."""
    if isinstance(dataset, DatasetDict):
        dataset = next(iter(dataset.values()))
    return [float(score) for score in next(iter(dataset.select_columns(["bin_scores"])))["bin_scores"]]


def scalar_to_distribution(scores: np.ndarray, bin_scores: Sequence[float], std: float) -> np.ndarray:
    """Spread scalar scores over bins as a discretised Gaussian whose mean is exactly the score.

    Bin k gets the Gaussian's mass between the midpoints to its neighbours (the outer bins take the tails). The
    Gaussian's centre is found by bisection so that the distribution's mean equals the score, which a Gaussian centred
    on the score would miss near the ends of the scale. Used for AADB when only its scalar scores exist.

    Args:
        scores: `(n,)` scalar scores within `[bin_scores[0], bin_scores[-1]]`.
        bin_scores: the value of each bin, increasing.
        std: the Gaussian's standard deviation, in score units.

    Returns:
        `(n, d)` distributions.
    """
    scores = np.asarray(scores, dtype=np.float64)
    bins = np.asarray(bin_scores, dtype=np.float64)
    if std <= 0:
        raise ValueError(f"std must be positive, got {std}")
    if scores.min(initial=bins[0]) < bins[0] or scores.max(initial=bins[-1]) > bins[-1]:
        raise ValueError(f"scores must lie within the bins [{bins[0]}, {bins[-1]}]")
    edges = np.concatenate([[-np.inf], (bins[:-1] + bins[1:]) / 2, [np.inf]])

    def spread(centres: np.ndarray) -> np.ndarray:
        cdf = ndtr((edges[None, :] - centres[:, None]) / std)
        return np.diff(cdf, axis=1)

    span = bins[-1] - bins[0]
    low, high = np.full_like(scores, bins[0] - 4 * span), np.full_like(scores, bins[-1] + 4 * span)
    for _ in range(60):  # the mean is increasing in the centre; 60 halvings reach float precision
        middle = (low + high) / 2
        too_low = spread(middle) @ bins < scores
        low, high = np.where(too_low, middle, low), np.where(too_low, high, middle)
    return spread((low + high) / 2)


def find_unreadable(paths: Sequence[str], verify: str = "decode", num_workers: int | None = None) -> dict[str, str]:
    """The paths among `paths` that cannot be used, with the reason.

    Args:
        verify: `"decode"` decodes every image (catches truncated and corrupt files; slow on all of AVA),
            `"exists"` only checks the file is there and not empty, `"none"` trusts the list.
    """
    if verify not in VERIFY_MODES:
        raise ValueError(f"verify must be one of {VERIFY_MODES}, got {verify!r}")
    if verify == "none":
        return {}

    def problem(path: str) -> str | None:
        if verify == "exists":
            if not os.path.isfile(path):
                return "missing"
            return "empty file" if os.path.getsize(path) == 0 else None
        try:
            open_image(path)
        except ImageReadError as error:
            return str(error).removeprefix(f"{path}: ")
        return None

    with ThreadPoolExecutor(max_workers=num_workers or min(8, os.cpu_count() or 1)) as pool:
        problems = pool.map(problem, paths, chunksize=64)
        return {path: reason for path, reason in zip(paths, problems) if reason is not None}


def drop_unreadable(
    splits: dict[str, list[LabeledImage]],
    dataset_name: str,
    verify: str,
    num_workers: int | None,
    dropped_report: str | os.PathLike | None,
) -> dict[str, list[LabeledImage]]:
    """Remove the images that cannot be read from every split, say how many, and list them in `dropped_report`.

    The report is a TSV of path and reason, written even when nothing was dropped.
    """
    paths = [image.image_path for images in splits.values() for image in images]
    unreadable = find_unreadable(paths, verify, num_workers)
    if unreadable:
        logger.warning(f"{dataset_name}: dropped {len(unreadable)} of {len(paths)} images that cannot be read")
    if dropped_report is not None:
        Path(dropped_report).parent.mkdir(parents=True, exist_ok=True)
        with open(dropped_report, "w", encoding="utf-8") as report:
            report.write("path\treason\n")
            report.writelines(f"{path}\t{reason}\n" for path, reason in unreadable.items())
    return {
        split: [image for image in images if image.image_path not in unreadable] for split, images in splits.items()
    }


def build_dataset(images: Sequence[LabeledImage], bin_scores: Sequence[float], split: str) -> Dataset:
    """A `datasets.Dataset` with the shared columns from loader records."""
    bin_scores = [float(score) for score in bin_scores]
    votes = np.stack([image.votes for image in images]) if images else np.zeros((0, len(bin_scores)))
    if votes.shape[1] != len(bin_scores):
        raise ValueError(f"{split}: records have {votes.shape[1]} bins but the dataset has {len(bin_scores)}")
    totals = votes.sum(axis=1, keepdims=True)
    if (totals <= 0).any():
        raise ValueError(f"{split}: an image has no votes: {images[int(np.argmin(totals))].image_id}")
    return Dataset.from_dict(
        {
            "image": [image.image_path for image in images],
            "image_id": [image.image_id for image in images],
            "distribution": (votes / totals).tolist(),
            "mean_score": [image.mean_score for image in images],
            "num_votes": [image.num_votes for image in images],
            "bin_scores": [bin_scores] * len(images),
            "split": [split] * len(images),
        },
        features=labeled_features(len(bin_scores)),
    )


def split_by_ids(images: Sequence[LabeledImage], test_ids: set[str]) -> dict[str, list[LabeledImage]]:
    return {
        "train": [image for image in images if image.image_id not in test_ids],
        "test": [image for image in images if image.image_id in test_ids],
    }


def paper_train_count(num_images: int, paper_train: int, paper_total: int) -> int:
    """How many of `num_images` a paper-style random split trains on: the paper's own count (CSKD §4.1: "237,623,
    8345 and 28220 samples are randomly selected for training"), or its share of `paper_total` when fewer images
    are at hand; at least one image is left for the test split."""
    if num_images < 2:
        raise ValueError(f"a train / test split needs at least 2 images, got {num_images}")
    return max(1, min(paper_train, int(round(paper_train / paper_total * num_images)), num_images - 1))


def random_split(images: Sequence[LabeledImage], num_train: int, seed: int) -> dict[str, list[LabeledImage]]:
    order = np.random.default_rng(seed).permutation(len(images))
    return {
        "train": [images[i] for i in sorted(order[:num_train])],
        "test": [images[i] for i in sorted(order[num_train:])],
    }


def carve_validation(
    splits: dict[str, list[LabeledImage]], validation_size: float | int, seed: int
) -> dict[str, list[LabeledImage]]:
    """Move a seeded random part of `train` (a count, or a fraction when < 1) into a `validation` split."""
    if not validation_size:
        return splits
    train = splits["train"]
    count = int(round(validation_size * len(train))) if validation_size < 1 else int(validation_size)
    if not 0 < count < len(train):
        raise ValueError(f"validation_size {validation_size} leaves no train or no validation images")
    chosen = set(np.random.default_rng(seed + 1).choice(len(train), size=count, replace=False).tolist())
    return {
        **splits,
        "train": [image for i, image in enumerate(train) if i not in chosen],
        "validation": [image for i, image in enumerate(train) if i in chosen],
    }


def to_dataset_dict(splits: dict[str, list[LabeledImage]], bin_scores: Sequence[float]) -> DatasetDict:
    return DatasetDict({name: build_dataset(images, bin_scores, name) for name, images in splits.items() if images})


def read_id_list(path: str | os.PathLike) -> set[str]:
    """Image ids, one per line (the format of AVA's `.jpgl` lists); blank lines ignored."""
    with open(path, encoding="utf-8") as lines:
        return {line.strip() for line in lines if line.strip()}


__all__ = [
    "LabeledImage",
    "bin_scores_of",
    "build_dataset",
    "find_unreadable",
    "labeled_features",
    "scalar_to_distribution",
]
