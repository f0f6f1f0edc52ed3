"""A toy aesthetics world for trainer tests: the score is the image's brightness, so it is learnable from pixels."""

from pathlib import Path

import numpy as np
from datasets import DatasetDict
from PIL import Image

from cskd_hf.data.labeled import LabeledImage, build_dataset, scalar_to_distribution
from cskd_hf.data.prepare import dataset_card, write_parquet

AVA_BINS = [float(s) for s in range(1, 11)]


def toy_image(rng: np.random.Generator, brightness: float, size: int) -> Image.Image:
    colour = rng.uniform(0.3, 1.0, size=3)
    pixels = colour[None, None, :] * brightness + rng.normal(0, 0.05, size=(size, size, 3))
    return Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8))


def write_toy_labeled(out_dir: Path, sizes: dict[str, int] | None = None, image_size: int = 40, seed: int = 0) -> Path:
    """A prepared (Parquet) labeled dataset whose mean score is 2 + 6 * brightness, with AVA-like bins."""
    rng = np.random.default_rng(seed)
    splits = {}
    for split, count in (sizes or {"train": 48, "validation": 16}).items():
        brightness = rng.uniform(0, 1, size=count)
        means = 2 + 6 * brightness
        distributions = scalar_to_distribution(means, AVA_BINS, std=1.4)
        images = []
        for i, (b, mean, distribution) in enumerate(zip(brightness, means, distributions)):
            path = out_dir / "images" / split / f"{i:04d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            toy_image(rng, b, image_size).save(path)
            images.append(LabeledImage(str(path), f"{split}-{i}", distribution * 100, float(mean), 100))
        splits[split] = build_dataset(images, AVA_BINS, split)
    dataset_dict = DatasetDict(splits)
    write_parquet(dataset_dict, out_dir / "prepared")
    dataset_card("toy", dataset_dict, "generated", 0).save(out_dir / "prepared" / "README.md")
    return out_dir / "prepared"


def write_toy_unlabeled(out_dir: Path, count: int = 32, image_size: int = 40, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        toy_image(rng, rng.uniform(0, 1), image_size).save(out_dir / f"{i:04d}.png")
    return out_dir
