"""Fixtures that the tests of several data modules share: a tiny AVA folder, an unlabeled corpus, and ImageNet's
layout in miniature (class folders)."""

import numpy as np
import pytest
from datasets import Dataset, Features
from datasets import Image as ImageFeature
from PIL import Image

from cskd_hf.data.prepare import write_parquet
from tests.data.benchmark_files import write_ava
from tests.data.corpus import CLASSES, IMAGES_PER_CLASS, NUM_FOLDER_IMAGES, NUM_PARQUET_IMAGES


@pytest.fixture(scope="module")
def ava_root(tmp_path_factory):
    return write_ava(tmp_path_factory.mktemp("AVA"))


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


@pytest.fixture(scope="session")
def class_folders(tmp_path_factory):
    """ImageNet's training layout in miniature: `CLASSES` folders of `IMAGES_PER_CLASS` tiny images each, listed in
    class order (as a sorted file list is)."""
    root = tmp_path_factory.mktemp("classes")
    image = Image.new("RGB", (8, 8), (90, 120, 150))
    for label in range(CLASSES):
        folder = root / f"n{label:08d}"
        folder.mkdir()
        for index in range(IMAGES_PER_CLASS):
            image.save(folder / f"{index:03d}.png")
    return root
