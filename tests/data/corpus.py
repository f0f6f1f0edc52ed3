"""The sizes of the unlabeled corpora (the `corpus` and `class_folders` fixtures of conftest.py) that the stream,
batching and shard tests read, and how i.i.d. a stream's batches are."""

import math
from pathlib import Path

NUM_FOLDER_IMAGES = 23  # plus one corrupt file
NUM_PARQUET_IMAGES = 9
CLASSES, IMAGES_PER_CLASS = 200, 40
# A CFA batch of the quickstart's size.
BATCH = 32


def iid_distinct_classes(batch: int = BATCH) -> float:
    """The expected number of distinct classes in a batch drawn at random (without replacement) from the layout."""
    total = CLASSES * IMAGES_PER_CLASS
    absent = math.prod((total - IMAGES_PER_CLASS - i) / (total - i) for i in range(batch))
    return CLASSES * (1 - absent)


def batch_classes(stream, batch: int = BATCH) -> tuple[float, list[str]]:
    """The mean number of distinct classes (the images' folders) over the whole batches of a stream's epoch, and the
    images it gave (by class folder and name)."""
    images = [Path(example["image"]["path"]) for example in stream]
    names = [f"{path.parent.name}/{path.stem}" for path in images]
    batches = [names[start : start + batch] for start in range(0, len(names) - batch + 1, batch)]
    return sum(len({name.split("/")[0] for name in chunk}) for chunk in batches) / len(batches), names
