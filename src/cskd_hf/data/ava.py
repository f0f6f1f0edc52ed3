"""AVA (Murray et al., 2012) from its original files: `AVA.txt`, `images/<id>.jpg` and the official test list.

`AVA.txt` has one row per image: index, image id, the vote counts for ratings 1..10, two semantic tag ids and a
challenge id. The mean score is sum(rating * count) / sum(count).
"""

import logging
import os
from pathlib import Path

import numpy as np
from datasets import DatasetDict

from .labeled import (
    LabeledImage,
    carve_validation,
    drop_unreadable,
    paper_train_count,
    random_split,
    read_id_list,
    split_by_ids,
    to_dataset_dict,
)

logger = logging.getLogger(__name__)

AVA_BIN_SCORES = [float(score) for score in range(1, 11)]
# The CSKD paper's random split: 237,623 training images of the 242,538 it used.
PAPER_TRAIN, PAPER_TOTAL = 237_623, 242_538
OFFICIAL_TEST_LIST = ("aesthetics_image_lists/generic_test.jpgl", "generic_test.jpgl")


def read_ava_txt(path: str | os.PathLike, image_dir: str | os.PathLike) -> list[LabeledImage]:
    """Parse `AVA.txt`; a malformed row (too few columns, a count that is not a whole number >= 0, an image id seen
    before) raises a `ValueError` naming the file and line. Rows without a vote are left out, with a warning."""
    images, first_line_of, unvoted = [], {}, []
    try:
        with open(path, encoding="utf-8") as rows:
            for line_number, line in enumerate(rows, start=1):
                fields = line.split()
                if not fields:
                    continue
                if len(fields) < 12:
                    raise ValueError(f"{path}:{line_number}: expected at least 12 columns, got {len(fields)}")
                try:
                    votes = np.array([int(count) for count in fields[2:12]], dtype=np.float64)
                except ValueError as error:
                    raise ValueError(f"{path}:{line_number}: vote counts must be integers ({error})") from error
                if (votes < 0).any():
                    raise ValueError(f"{path}:{line_number}: negative vote count in {fields[2:12]}")
                image_id = fields[1]
                if image_id in first_line_of:
                    raise ValueError(
                        f"{path}:{line_number}: image {image_id} already listed on line {first_line_of[image_id]}"
                    )
                first_line_of[image_id] = line_number
                total = votes.sum()
                if total == 0:
                    unvoted.append(line_number)  # no votes, no label
                    continue
                images.append(
                    LabeledImage(
                        image_path=str(Path(image_dir) / f"{image_id}.jpg"),
                        image_id=image_id,
                        votes=votes,
                        mean_score=float(votes @ np.asarray(AVA_BIN_SCORES) / total),
                        num_votes=int(total),
                    )
                )
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text ({error})") from error
    if unvoted:
        shown = ", ".join(map(str, unvoted[:5])) + (", ..." if len(unvoted) > 5 else "")
        logger.warning(f"{path}: {len(unvoted)} rows without a vote left out (lines {shown})")
    return images


def load_ava(
    root: str | os.PathLike,
    split: str = "official",
    test_ids_file: str | os.PathLike | None = None,
    seed: int = 0,
    validation_size: float | int = 0,
    verify: str = "decode",
    num_workers: int | None = None,
    dropped_report: str | os.PathLike | None = None,
) -> DatasetDict:
    """Load AVA as a `DatasetDict` of `train`, `test` (and `validation` if asked).

    Args:
        root: the folder holding `AVA.txt` and `images/` (and `aesthetics_image_lists/` for the official split).
        split: `"official"`, the `generic_test.jpgl` test list (19,930 images, the usual benchmark, that of pyiqa's
            and most published tables); `"paper"`, a seeded random split with the CSKD paper's 237,623 training
            images (Table 1's protocol; the rest of the readable images, about 17,900, are the test set; with fewer
            images, the paper's share of 237,623 / 242,538); `"ids"`, the ids listed in `test_ids_file` are the
            test set.
        test_ids_file: an id list, one per line, for `split="ids"`; overrides the official list's location.
        seed: for the random split and the validation carve-out.
        validation_size: images (a count, or a fraction when < 1) moved from train to a `validation` split.
        verify: `"decode"` (every image decoded), `"exists"` or `"none"`; unreadable images are dropped.
        dropped_report: write the dropped images and reasons to this TSV file.
    """
    root = Path(root)
    images = read_ava_txt(root / "AVA.txt", root / "images")
    images = drop_unreadable({"all": images}, "AVA", verify, num_workers, dropped_report)["all"]
    if split == "paper":
        splits = random_split(images, paper_train_count(len(images), PAPER_TRAIN, PAPER_TOTAL), seed)
    elif split in ("official", "ids"):
        if test_ids_file is None:
            if split == "ids":
                raise ValueError("split='ids' needs test_ids_file")
            candidates = [root / name for name in OFFICIAL_TEST_LIST]
            test_ids_file = next((path for path in candidates if path.exists()), None)
            if test_ids_file is None:
                raise FileNotFoundError(f"AVA's official test list not found: {', '.join(map(str, candidates))}")
        splits = split_by_ids(images, read_id_list(test_ids_file))
    else:
        raise ValueError(f"split must be 'official', 'paper' or 'ids', got {split!r}")
    return to_dataset_dict(carve_validation(splits, validation_size, seed), AVA_BIN_SCORES)


__all__ = ["AVA_BIN_SCORES", "load_ava", "read_ava_txt"]
