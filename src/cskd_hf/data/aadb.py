"""AADB (Kong et al., 2016) from its released files.

The overall score of each image, normalised to [0, 1], is in `imgListFiles_label/imgList{Train,Validation,TestNew}
Regression_score.txt` (`<filename> <score>` per line). The bins are the five crowd ratings 1..5 mapped onto that
scale, `(rating - 1) / 4`, so a model trained on AADB reports scores in [0, 1] like the dataset. With
`AADB_AllinAll.csv` the target distribution is the histogram of the raw ratings (its columns `Answer.overallScore*`);
without it the scalar is spread over the bins by `scalar_to_distribution` (a discretised Gaussian with the score as
its exact mean, std `scalar_std`). `mean_score` is always the released scalar.

The mapping `(rating - 1) / 4` is this project's reading of the release, not AADB's documentation: with
`AADB_AllinAll.csv` present, every image's histogram mean is compared with its released scalar, and the files and
images that disagree by more than `MAPPING_TOLERANCE` are named in a warning.
"""

import csv
import logging
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
from datasets import DatasetDict

from .labeled import (
    LabeledImage,
    carve_validation,
    drop_unreadable,
    paper_train_count,
    random_split,
    scalar_to_distribution,
    to_dataset_dict,
)

logger = logging.getLogger(__name__)

AADB_BIN_SCORES = [0.0, 0.25, 0.5, 0.75, 1.0]
SPLIT_FILES = {
    "train": "imgListTrainRegression_score.txt",
    "validation": "imgListValidationRegression_score.txt",
    "test": "imgListTestNewRegression_score.txt",
}
IMAGE_DIRS = ("datasetImages_originalSize", "datasetImages_warp256", "images")
# A typical AADB image's rating spread (about 0.8 on the 1..5 scale), in [0, 1] units.
DEFAULT_SCALAR_STD = 0.2
# A 1 % difference of the [0, 1] scale, far above the rounding of the released scores.
MAPPING_TOLERANCE = 0.01
# The CSKD paper's random split: 8,345 training images of AADB's 10,000.
PAPER_TRAIN, PAPER_TOTAL = 8_345, 10_000


def read_score_file(path: str | os.PathLike) -> list[tuple[str, float]]:
    rows, first_line_of = [], {}
    with open(path, encoding="utf-8") as lines:
        for line_number, line in enumerate(lines, start=1):
            fields = line.split()
            if not fields:
                continue
            try:
                name, score = fields[0], float(fields[1])
            except (IndexError, ValueError) as error:
                raise ValueError(f"{path}:{line_number}: expected '<file> <score>', got {line.strip()!r}") from error
            if not 0.0 <= score <= 1.0:
                raise ValueError(f"{path}:{line_number}: score {score} is outside [0, 1]")
            if name in first_line_of:
                raise ValueError(f"{path}:{line_number}: {name} already listed on line {first_line_of[name]}")
            first_line_of[name] = line_number
            rows.append((name, score))
    return rows


def read_rating_histograms(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Histograms of the 1..5 overall ratings per image file name, from `AADB_AllinAll.csv`.

    Works whether each row holds one rating or all five: every `Answer.overallScore*` value counts.
    """
    histograms: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(5))
    with open(path, encoding="utf-8", newline="") as file:
        reader = csv.DictReader(file)
        name_column = next((c for c in reader.fieldnames or [] if "image" in c.lower()), None)
        rating_columns = [c for c in reader.fieldnames or [] if c.startswith("Answer.overallScore")]
        if name_column is None or not rating_columns:
            raise ValueError(f"{path}: needs an image name column and Answer.overallScore* columns")
        for row in reader:
            for column in rating_columns:
                value = (row[column] or "").strip()
                if value:
                    try:
                        rating = int(round(float(value)))
                    except (ValueError, OverflowError) as error:  # "x", NaN, infinity
                        raise ValueError(f"{path}:{reader.line_num}: {column} is not a rating ({error})") from error
                    if not 1 <= rating <= 5:
                        raise ValueError(
                            f"{path}:{reader.line_num}: rating {value} in {column} for {row[name_column]} is not 1..5"
                        )
                    histograms[Path(row[name_column]).name][rating - 1] += 1
    return dict(histograms)


def load_aadb(
    root: str | os.PathLike,
    image_dir: str | os.PathLike | None = None,
    scalar_std: float = DEFAULT_SCALAR_STD,
    verify: str = "decode",
    num_workers: int | None = None,
    dropped_report: str | os.PathLike | None = None,
    split: str = "official",
    seed: int = 0,
    validation_size: float | int = 0,
) -> DatasetDict:
    """Load AADB's released train / validation / test lists as a `DatasetDict`.

    Args:
        root: the folder holding `imgListFiles_label/` (and optionally `AADB_AllinAll.csv`).
        image_dir: where the images are; by default the first of `datasetImages_originalSize`,
            `datasetImages_warp256`, `images` under `root` that exists.
        scalar_std: spread of the Gaussian rule when the raw ratings are not available.
        split: `"official"`, the released lists (8,458 / 500 / 1,000, the split of most published AADB tables);
            `"paper"`, the three lists pooled and split at random (seeded) with the CSKD paper's 8,345 training
            images (Table 2's protocol), the rest as test.
        seed: for the random split and the validation carve-out.
        validation_size: with `split="paper"`, images (a count, or a fraction when < 1) moved from train to a
            `validation` split.
    """
    if split not in ("official", "paper"):
        raise ValueError(f"split must be 'official' or 'paper', got {split!r}")
    if validation_size and split != "paper":
        raise ValueError("validation_size needs split='paper' (AADB's official lists have a validation split)")
    root = Path(root)
    if image_dir is None:
        image_dir = next((root / name for name in IMAGE_DIRS if (root / name).is_dir()), root)
    histograms = read_rating_histograms(root / "AADB_AllinAll.csv") if (root / "AADB_AllinAll.csv").exists() else {}
    splits = {}
    for list_split, file_name in SPLIT_FILES.items():
        path = root / "imgListFiles_label" / file_name
        if not path.exists():
            raise FileNotFoundError(f"AADB score list not found: {path}")
        rows = read_score_file(path)
        spread = scalar_to_distribution(np.array([score for _, score in rows]), AADB_BIN_SCORES, scalar_std)
        splits[list_split] = [
            LabeledImage(
                image_path=str(Path(image_dir) / name),
                image_id=Path(name).stem,
                votes=histograms[name] if name in histograms else fallback,
                mean_score=score,
                num_votes=int(histograms[name].sum()) if name in histograms else -1,
            )
            for (name, score), fallback in zip(rows, spread)
        ]
        _warn_on_mapping_disagreements(path, rows, histograms)
        if histograms and not all(name in histograms for name, _ in rows):
            missing = sum(name not in histograms for name, _ in rows)
            logger.warning(f"AADB_AllinAll.csv has no ratings for {missing} images of {file_name}: Gaussian rule used")

    splits = drop_unreadable(splits, "AADB", verify, num_workers, dropped_report)
    if split == "paper":
        pooled = [image for images in splits.values() for image in images]
        splits = random_split(pooled, paper_train_count(len(pooled), PAPER_TRAIN, PAPER_TOTAL), seed)
        splits = carve_validation(splits, validation_size, seed)
    return to_dataset_dict(splits, AADB_BIN_SCORES)


def mapping_disagreements(
    rows: list[tuple[str, float]], histograms: dict[str, np.ndarray]
) -> list[tuple[str, float, float]]:
    """`(file name, released score, histogram mean on [0, 1])` of the images whose released scalar is not the mean
    of their raw ratings under the `(rating - 1) / 4` mapping."""
    bins = np.asarray(AADB_BIN_SCORES)
    disagreements = []
    for name, score in rows:
        histogram = histograms.get(name)
        if histogram is not None and histogram.sum() > 0:
            mean = float(histogram @ bins / histogram.sum())
            if abs(mean - score) > MAPPING_TOLERANCE:
                disagreements.append((name, score, mean))
    return disagreements


def _warn_on_mapping_disagreements(path: Path, rows, histograms) -> None:
    disagreements = mapping_disagreements(rows, histograms)
    if disagreements:
        examples = ", ".join(f"{name} ({score:g} vs {mean:.4g})" for name, score, mean in disagreements[:5])
        logger.warning(
            f"{path}: {len(disagreements)} of {len(rows)} released scores differ from their AADB_AllinAll.csv "
            f"ratings' mean under (rating - 1) / 4 by more than {MAPPING_TOLERANCE:g}, e.g. {examples}: the bins' "
            "mapping may not be the release's for these images"
        )


__all__ = ["AADB_BIN_SCORES", "load_aadb", "mapping_disagreements", "read_rating_histograms", "read_score_file"]
