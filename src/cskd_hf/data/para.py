"""PARA (Yang et al., 2022) from its original annotation files.

The official GIAA split files `annotation/PARA-GiaaTrain.csv` and `PARA-GiaaTest.csv` give, per image, `imageName`,
`sessionId`, the aesthetic score distribution over 9 levels `aestheticScore_1.0 ... aestheticScore_5.0` (step 0.5)
and `aestheticScore_mean`. The per-user `PARA-Images.csv` (one row per user and image) can be used instead; its
`aestheticScore` column is then grouped by image into the same 9-level histogram. Images are
`imgs/<sessionId>/<imageName>`.
"""

import csv
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
from datasets import DatasetDict

from .labeled import LabeledImage, drop_unreadable, to_dataset_dict

PARA_BIN_SCORES = [1.0 + 0.5 * level for level in range(9)]
GIAA_FILES = {"train": "PARA-GiaaTrain.csv", "test": "PARA-GiaaTest.csv"}
LEVEL_COLUMNS = [f"aestheticScore_{score:.1f}" for score in PARA_BIN_SCORES]


def _image_key(row: dict) -> tuple[str, str]:
    return row["sessionId"].strip(), row["imageName"].strip()


def read_giaa_file(path: str | os.PathLike, image_dir: str | os.PathLike) -> list[LabeledImage]:
    images, first_line_of = [], {}
    with open(path, encoding="utf-8", newline="") as file:
        reader = csv.DictReader(file)
        missing = [c for c in ["imageName", "sessionId", *LEVEL_COLUMNS] if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing columns {', '.join(missing)}")
        for line_number, row in enumerate(reader, start=2):
            try:
                votes = np.array([float(row[column]) for column in LEVEL_COLUMNS])
            except ValueError as error:
                raise ValueError(f"{path}:{line_number}: aestheticScore_* must be numbers ({error})") from error
            if not np.isfinite(votes).all() or (votes < 0).any():
                raise ValueError(
                    f"{path}:{line_number}: aestheticScore_* must be finite and >= 0, got {votes.tolist()}"
                )
            if votes.sum() <= 0:
                raise ValueError(f"{path}:{line_number}: the score distribution is empty")
            session, name = _image_key(row)
            if (session, name) in first_line_of:
                raise ValueError(
                    f"{path}:{line_number}: {session}/{name} already listed on line {first_line_of[session, name]}"
                )
            first_line_of[session, name] = line_number
            mean = float(row["aestheticScore_mean"]) if row.get("aestheticScore_mean") else None
            images.append(
                LabeledImage(
                    image_path=str(Path(image_dir) / session / name),
                    image_id=f"{session}/{name}",
                    votes=votes,
                    mean_score=mean if mean is not None else float(votes @ PARA_BIN_SCORES / votes.sum()),
                    # Integral level counts are votes; proportions say nothing about how many people voted.
                    num_votes=int(votes.sum()) if np.allclose(votes, np.round(votes)) and votes.sum() > 1 else -1,
                )
            )
    return images


def read_per_user_file(path: str | os.PathLike, image_dir: str | os.PathLike) -> dict[str, LabeledImage]:
    """Group `PARA-Images.csv` by image into 9-level vote histograms, keyed by `sessionId/imageName`."""
    votes: dict[tuple[str, str], np.ndarray] = defaultdict(lambda: np.zeros(len(PARA_BIN_SCORES)))
    with open(path, encoding="utf-8", newline="") as file:
        for line_number, row in enumerate(csv.DictReader(file), start=2):
            try:
                level = (float(row["aestheticScore"]) - 1.0) / 0.5
            except (KeyError, ValueError) as error:
                raise ValueError(f"{path}:{line_number}: needs a numeric aestheticScore ({error})") from error
            if not (0 <= level <= 8 and level == int(level)):
                raise ValueError(f"{path}:{line_number}: aestheticScore {row['aestheticScore']} not 1..5 by 0.5")
            votes[_image_key(row)][int(level)] += 1
    return {
        f"{session}/{name}": LabeledImage(
            image_path=str(Path(image_dir) / session / name),
            image_id=f"{session}/{name}",
            votes=counts,
            mean_score=float(counts @ PARA_BIN_SCORES / counts.sum()),
            num_votes=int(counts.sum()),
        )
        for (session, name), counts in votes.items()
    }


def load_para(
    root: str | os.PathLike,
    per_user: bool = False,
    verify: str = "decode",
    num_workers: int | None = None,
    dropped_report: str | os.PathLike | None = None,
) -> DatasetDict:
    """Load PARA's official GIAA split as a `DatasetDict` of `train` and `test`.

    Args:
        root: the folder holding `annotation/` and `imgs/`.
        per_user: build the distributions from the per-user `annotation/PARA-Images.csv`; the GIAA files, when
            present, still decide the split (otherwise every image goes to `train`).
    """
    root = Path(root)
    annotation, image_dir = root / "annotation", root / "imgs"
    giaa = {split: annotation / name for split, name in GIAA_FILES.items() if (annotation / name).exists()}
    if per_user:
        by_id = read_per_user_file(annotation / "PARA-Images.csv", image_dir)
        if giaa:
            splits = {
                split: [by_id[image.image_id] for image in read_giaa_file(path, image_dir) if image.image_id in by_id]
                for split, path in giaa.items()
            }
        else:
            splits = {"train": list(by_id.values())}
    else:
        if len(giaa) < len(GIAA_FILES):
            raise FileNotFoundError(f"PARA GIAA split files missing in {annotation}: {', '.join(GIAA_FILES.values())}")
        splits = {split: read_giaa_file(path, image_dir) for split, path in giaa.items()}
    splits = drop_unreadable(splits, "PARA", verify, num_workers, dropped_report)
    return to_dataset_dict(splits, PARA_BIN_SCORES)


__all__ = ["PARA_BIN_SCORES", "load_para", "read_giaa_file", "read_per_user_file"]
