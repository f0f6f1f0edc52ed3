"""SynthAVA: a generated aesthetics world, so the whole CSKD method runs on a laptop with nothing downloaded.

Each image shows one **subject** (the content: one of `CONTENT_CLASSES`) on a gradient background, rendered with
**style** attributes drawn independently of the content: exposure, contrast, blur, noise, the colour harmony between
subject and background, the subject's placement and its size. A latent aesthetic score is a fixed, non-linear
function of the style alone (see `latent_score`), standardised to AVA's statistics (mean 5.4, spread 0.7); simulated
voters (100-250 per image, each off by about 1.4 points) give AVA-like vote histograms over the scores 1..10. Every
image has a plain-words caption of its content and style, which the tiny CLIP of the quickstart learns from.

SynthAVA is synthetic: it says nothing about real photographs. It exists to exercise the method end to end.
"""

import io
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Value
from PIL import Image
from scipy.ndimage import gaussian_filter

from ..baselines.zero_shot import write_prompts
from ..data.labeled import labeled_features
from ..data.prepare import write_parquet

CONTENT_CLASSES = ["circle", "square", "triangle", "star", "ring", "cross", "diamond", "ellipse", "crescent"]
COLOUR_NAMES = ["red", "orange", "yellow", "green", "teal", "blue", "purple", "pink"]
AVA_BIN_SCORES = [float(score) for score in range(1, 11)]
DEFAULT_SPLITS = {"unlabeled": 50_000, "train": 5_000, "validation": 1_000, "test": 2_000}
MOS_MEAN, MOS_SPREAD = 5.4, 0.7
# The zero-shot baseline's antonym pairs in SynthAVA's caption vocabulary ("good photo" means nothing to a CLIP that
# has only read SynthAVA captions): one pair per term of `latent_score` a caption can name, written from that
# documented function, never fitted to data. Written next to the data as zero_shot_prompts.txt.
ZERO_SHOT_PROMPTS = [
    ("a sharp photo", "a blurry photo"),
    ("a photo", "a grainy photo"),
    ("a photo", "a dark photo"),
    ("a photo", "a flat photo"),
    ("a photo with harmonious colours", "a photo with clashing colours"),
    ("a photo on a third", "a photo cut by the edge"),
]
VOTER_NOISE = 1.35  # with rounding, a per-image vote std of about 1.4, as on AVA
THIRDS = np.array([[1 / 3, 1 / 3], [1 / 3, 2 / 3], [2 / 3, 1 / 3], [2 / 3, 2 / 3]])


@dataclass
class Style:
    """The style attributes of one image (arrays over a batch of images)."""

    exposure: np.ndarray  # multiplies the linear intensity: < 1 dark, > 1 blown out
    contrast: np.ndarray  # scales deviations from the mean intensity
    blur: np.ndarray  # Gaussian blur sigma, in pixels of a 64 px image
    noise: np.ndarray  # std of additive Gaussian noise
    hue_gap: np.ndarray  # hue difference between subject and background, in turns [0, 0.5]
    centre: np.ndarray  # (n, 2) subject centre (x, y) in [0, 1]
    size: np.ndarray  # subject radius as a fraction of the image side


def neutral_styles(rng: np.random.Generator, n: int) -> Style:
    """Well-exposed, sharp, clean images of the subjects: the "ImageNet" of this world, for content pretraining."""
    style = sample_styles(rng, n)
    style.exposure, style.contrast = np.ones(n), np.ones(n)
    style.blur, style.noise = np.zeros(n), np.zeros(n)
    style.size = rng.uniform(0.15, 0.36, n)
    return style


def sample_styles(rng: np.random.Generator, n: int) -> Style:
    """The style attributes of `n` images. Like AVA's challenge entries, most are sharp and clean: blur and noise are
    rare faults (means 0.4 px and 0.015), so that lighting, colour and composition decide most of the score. With the
    first SynthAVA's means (0.8 px, 0.035) they made up a quarter of the score's variance: noise, which any
    convolutional features read and the caption-trained tiny CLIP does not, and blur, which no frozen feature here
    reads linearly. The premises of #26 failed on that world (docs/calibration.md)."""
    gap_kind = rng.choice(4, size=n, p=[0.3, 0.25, 0.2, 0.25])
    hue_gap = np.select(
        [gap_kind == 0, gap_kind == 1, gap_kind == 2],
        [rng.normal(0.06, 0.03, n), rng.normal(0.5, 0.03, n), rng.normal(0.25, 0.04, n)],
        rng.uniform(0, 0.5, n),
    )
    return Style(
        exposure=np.exp(rng.normal(0.0, 0.45, n)),
        contrast=rng.uniform(0.35, 1.7, n),
        blur=rng.exponential(0.4, n).clip(0, 3.5),
        noise=rng.exponential(0.015, n).clip(0, 0.16),
        hue_gap=np.abs(hue_gap).clip(0, 0.5),
        centre=rng.uniform(0.15, 0.85, (n, 2)),
        size=rng.uniform(0.08, 0.36, n),
    )


def harmony(hue_gap: np.ndarray) -> np.ndarray:
    """In [-1, 1]: analogous (close hues) and complementary (opposite) colours please; a quarter turn clashes."""
    analogous = np.exp(-((hue_gap - 0.06) ** 2) / (2 * 0.05**2))
    complementary = np.exp(-((hue_gap - 0.5) ** 2) / (2 * 0.06**2))
    clash = np.exp(-((hue_gap - 0.25) ** 2) / (2 * 0.05**2))
    return np.maximum(analogous, complementary) - clash


def latent_score(style: Style) -> np.ndarray:
    """The raw aesthetic score: a non-linear function of style only (the content plays no part).

    Each term is a penalty or bonus a photographer would recognise: correct exposure, moderate contrast, sharpness
    (blur hurts a small subject more), a clean image, harmonious colours, a subject on a third rather than centred or
    cut by the frame, and a subject neither lost nor cramped.
    """
    exposure = -1.3 * np.minimum(np.log(style.exposure) ** 2 / 0.35**2, 4.0)
    contrast = -0.8 * np.minimum(((style.contrast - 1.1) / 0.45) ** 2, 4.0)
    blur = -1.1 * (style.blur / 1.5) ** 1.4 * (1.0 + 0.8 * (style.size < 0.18))
    noise = -1.0 * np.minimum((style.noise / 0.07) ** 2, 4.0)
    colours = 0.9 * harmony(style.hue_gap)
    to_third = np.min(np.linalg.norm(style.centre[:, None, :] - THIRDS[None], axis=-1), axis=1)
    placement = 0.8 * np.exp(-(to_third**2) / (2 * 0.07**2))
    cut = np.maximum(0, style.size - np.min(np.concatenate([style.centre, 1 - style.centre], axis=1), axis=1))
    framing = -3.0 * cut / style.size.clip(1e-3)
    size = -0.7 * np.minimum(((style.size - 0.22) / 0.1) ** 2, 4.0)
    return exposure + contrast + blur + noise + colours + placement + framing + size


def standardise(raw: np.ndarray) -> np.ndarray:
    """Map raw scores to AVA's scale: mean 5.4 and spread 0.7 over the generated set, within [1.5, 9.5]."""
    return (MOS_MEAN + MOS_SPREAD * (raw - raw.mean()) / raw.std()).clip(1.5, 9.5)


def simulate_votes(rng: np.random.Generator, scores: np.ndarray) -> np.ndarray:
    """Vote histograms over 1..10: 100-250 voters per image, each rating round(score + noise), clipped."""
    counts = np.zeros((len(scores), 10))
    num_voters = rng.integers(100, 251, size=len(scores))
    for i, (score, voters) in enumerate(zip(scores, num_voters)):
        ratings = np.clip(np.rint(score + rng.normal(0, VOTER_NOISE, voters)), 1, 10).astype(int)
        counts[i] = np.bincount(ratings - 1, minlength=10)
    return counts


def _hsv_to_rgb(hue: float, saturation: float, value: float) -> np.ndarray:
    k = (np.array([5.0, 3.0, 1.0]) + hue * 6) % 6
    return value - value * saturation * np.clip(np.minimum(k, 4 - k), 0, 1)


def _shape_mask(content: int, x: np.ndarray, y: np.ndarray, radius: float) -> np.ndarray:
    distance = np.hypot(x, y)
    name = CONTENT_CLASSES[content]
    if name == "circle":
        return distance < radius
    if name == "square":
        return np.maximum(np.abs(x), np.abs(y)) < 0.8 * radius
    if name == "triangle":
        return (y < 0.7 * radius) & (y > -radius + 1.7 * np.abs(x))
    if name == "star":
        angle = np.arctan2(y, x)
        return distance < radius * (0.55 + 0.45 * np.cos(5 * angle + np.pi / 2))
    if name == "ring":
        return (distance < radius) & (distance > 0.6 * radius)
    if name == "cross":
        return ((np.abs(x) < 0.3 * radius) & (np.abs(y) < radius)) | (
            (np.abs(y) < 0.3 * radius) & (np.abs(x) < radius)
        )
    if name == "diamond":
        return np.abs(x) + np.abs(y) < radius
    if name == "ellipse":
        return (x / radius) ** 2 + (y / (0.5 * radius)) ** 2 < 1
    return (distance < radius) & (np.hypot(x - 0.45 * radius, y) > 0.8 * radius)  # crescent


def render(content: int, subject_hue: float, style: Style, index: int, size: int, rng: np.random.Generator):
    """One image as a uint8 (size, size, 3) array; `style` holds arrays and `index` picks this image's values."""
    supersample = 2
    side = size * supersample
    coords = (np.arange(side) + 0.5) / side
    x, y = np.meshgrid(coords, coords)
    cx, cy = style.centre[index]
    mask = _shape_mask(content, x - cx, y - cy, style.size[index]).astype(np.float64)

    background_hue = (subject_hue + style.hue_gap[index] * rng.choice([-1, 1])) % 1.0
    background = _hsv_to_rgb(background_hue, 0.35, 0.75)
    direction = rng.uniform(0, 2 * np.pi)
    ramp = 0.85 + 0.3 * ((x - 0.5) * np.cos(direction) + (y - 0.5) * np.sin(direction))
    subject = _hsv_to_rgb(subject_hue, 0.8, 0.9)
    shading = 1.0 - 0.25 * np.clip(np.hypot(x - cx + 0.3 * style.size[index], y - cy + 0.3 * style.size[index]), 0, 1)
    image = (background[None, None] * ramp[..., None]) * (1 - mask[..., None]) + (
        subject[None, None] * shading[..., None] * mask[..., None]
    )
    image = image.reshape(size, supersample, size, supersample, 3).mean(axis=(1, 3))

    if style.blur[index] > 0.05:
        image = gaussian_filter(image, sigma=(style.blur[index], style.blur[index], 0))
    mean = image.mean()
    image = mean + (image - mean) * style.contrast[index]
    image = image * style.exposure[index]
    image = image + rng.normal(0, style.noise[index], image.shape)
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def caption(content: int, subject_hue: float, style: Style, index: int) -> str:
    """A plain-words description, e.g. "a dark, blurry photo of a small red star near the edge"."""
    words = []
    exposure = style.exposure[index]
    words += ["dark"] if exposure < 0.7 else ["bright"] if exposure > 1.45 else []
    words += ["flat"] if style.contrast[index] < 0.7 else ["punchy"] if style.contrast[index] > 1.45 else []
    words += ["blurry"] if style.blur[index] > 1.2 else ["sharp"] if style.blur[index] < 0.3 else []
    words += ["grainy"] if style.noise[index] > 0.07 else []
    gap = style.hue_gap[index]
    colours = "clashing" if 0.18 < gap < 0.32 else "harmonious" if gap < 0.12 or gap > 0.42 else "mixed"
    size = "small" if style.size[index] < 0.16 else "large" if style.size[index] > 0.3 else "medium"
    centre = style.centre[index]
    edge = min(centre.min(), (1 - centre).min())
    if edge < style.size[index]:
        where = "cut by the edge"
    elif np.min(np.linalg.norm(centre[None] - THIRDS, axis=1)) < 0.08:
        where = "on a third"
    elif np.linalg.norm(centre - 0.5) < 0.1:
        where = "in the centre"
    else:
        where = "off centre"
    colour = COLOUR_NAMES[int(subject_hue * len(COLOUR_NAMES) + 0.5) % len(COLOUR_NAMES)]
    adjectives = ", ".join(words) + " " if words else ""
    return f"a {adjectives}photo of a {size} {colour} {CONTENT_CLASSES[content]} {where} with {colours} colours"


def _render_chunk(task: tuple) -> tuple[list[bytes], list[str]]:
    seed, contents, hues, style, size, quality = task
    rng = np.random.default_rng(seed)
    encoded, captions = [], []
    for i, (content, hue) in enumerate(zip(contents, hues)):
        buffer = io.BytesIO()
        Image.fromarray(render(int(content), float(hue), style, i, size, rng)).save(
            buffer, format="JPEG", quality=quality
        )
        encoded.append(buffer.getvalue())
        captions.append(caption(int(content), float(hue), style, i))
    return encoded, captions


def _slice(style: Style, start: int, stop: int) -> Style:
    return Style(**{name: getattr(style, name)[start:stop] for name in style.__dataclass_fields__})


def generate(
    splits: dict[str, int] | None = None,
    image_size: int = 64,
    seed: int = 0,
    num_workers: int | None = None,
    jpeg_quality: int = 92,
    neutral: bool = False,
) -> DatasetDict:
    """Generate SynthAVA, deterministically from `seed`, in the labeled-dataset format plus SynthAVA's own columns.

    Every split (the `unlabeled` one included) has the labeled columns, so the same files serve as labeled data and,
    through their `image` column, as an unlabeled source; plus `content`, `caption` and the style attributes.
    `neutral=True` renders every image with the neutral style (`neutral_styles`) instead: the content-pretraining
    set, whose scores carry no information.
    """
    splits = dict(splits or DEFAULT_SPLITS)
    total = sum(splits.values())
    rng = np.random.default_rng(seed)
    contents = rng.integers(0, len(CONTENT_CLASSES), total)
    hues = rng.uniform(0, 1, total)
    style = neutral_styles(rng, total) if neutral else sample_styles(rng, total)
    scores = standardise(latent_score(style))
    votes = simulate_votes(rng, scores)

    chunk = 500
    tasks = [
        (
            seed * 1_000_003 + start,
            contents[start : start + chunk],
            hues[start : start + chunk],
            _slice(style, start, start + chunk),
            image_size,
            jpeg_quality,
        )
        for start in range(0, total, chunk)
    ]
    workers = num_workers if num_workers is not None else min(4, os.cpu_count() or 1)
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            rendered = list(pool.map(_render_chunk, tasks))
    else:
        rendered = [_render_chunk(task) for task in tasks]
    images = [data for encoded, _ in rendered for data in encoded]
    captions = [text for _, texts in rendered for text in texts]

    features = labeled_features(len(AVA_BIN_SCORES))
    features["content"] = ClassLabel(names=CONTENT_CLASSES)
    features["caption"] = Value("string")
    for name in ("exposure", "contrast", "blur", "noise", "hue_gap", "size", "latent_score"):
        features[name] = Value("float32")

    dataset_dict = {}
    start = 0
    for split, count in splits.items():
        rows = slice(start, start + count)
        split_votes = votes[rows]
        dataset_dict[split] = Dataset.from_dict(
            {
                "image": [{"bytes": data, "path": None} for data in images[rows]],
                "image_id": [f"synthava-{seed}-{i}" for i in range(rows.start, rows.stop)],
                "distribution": (split_votes / split_votes.sum(1, keepdims=True)).tolist(),
                "mean_score": (split_votes @ np.asarray(AVA_BIN_SCORES) / split_votes.sum(1)).tolist(),
                "num_votes": split_votes.sum(1).astype(int).tolist(),
                "bin_scores": [AVA_BIN_SCORES] * count,
                "split": [split] * count,
                "content": contents[rows].tolist(),
                "caption": captions[rows],
                "exposure": style.exposure[rows].tolist(),
                "contrast": style.contrast[rows].tolist(),
                "blur": style.blur[rows].tolist(),
                "noise": style.noise[rows].tolist(),
                "hue_gap": style.hue_gap[rows].tolist(),
                "size": style.size[rows].tolist(),
                "latent_score": scores[rows].tolist(),
            },
            features=features,
        )
        start += count
    return DatasetDict(dataset_dict)


def write_synthava(out_dir: str | Path, **generate_kwargs) -> DatasetDict:
    """Generate SynthAVA and write it as a prepared dataset: Parquet shards per split and a dataset card."""
    out_dir = Path(out_dir)
    dataset_dict = generate(**generate_kwargs)
    write_parquet(dataset_dict, out_dir, rows_per_shard=5000)
    write_prompts(ZERO_SHOT_PROMPTS, out_dir / "zero_shot_prompts.txt")
    sizes = "\n".join(f"| {split} | {len(dataset):,} |" for split, dataset in dataset_dict.items())
    configs = [{"split": split, "path": f"data/{split}-*.parquet"} for split in dataset_dict]
    configs_yaml = "\n".join(f"  - split: {c['split']}\n    path: {c['path']}" for c in configs)
    (out_dir / "README.md").write_text(
        f"""---
license: apache-2.0
tags:
- image-aesthetics
- synthetic
configs:
- config_name: default
  data_files:
{configs_yaml}
---

# SynthAVA

Generated by `cskd data synth` (cskd-hf): procedurally rendered images with a latent aesthetic score that depends
on style only, AVA-like vote histograms over 1..10 and a caption per image. **Synthetic: it says nothing about
real photographs.** Generation settings: {generate_kwargs}.

| split | images |
|---|---|
{sizes}

Unlabeled source for training: `parquet:{out_dir}/data/unlabeled-*.parquet`. Prompt pairs for the zero-shot
baseline, in the captions' vocabulary: `zero_shot_prompts.txt`.
"""
    )
    return dataset_dict


def unlabeled_source(out_dir: str | Path) -> str:
    """The unlabeled-corpus source string of a written SynthAVA."""
    return f"parquet:{Path(out_dir) / 'data' / 'unlabeled-*.parquet'}"


def vote_statistics(dataset: Dataset) -> dict:
    """MOS mean and spread, mean per-image vote std and vote counts, to compare with AVA's."""
    distributions = np.asarray(dataset["distribution"], dtype=np.float64)
    bins = np.asarray(AVA_BIN_SCORES)
    means = distributions @ bins
    stds = np.sqrt(np.einsum("nd,nd->n", distributions, (bins[None] - means[:, None]) ** 2))
    votes = np.asarray(dataset["num_votes"])
    return {
        "mos_mean": float(means.mean()),
        "mos_std": float(means.std()),
        "vote_std": float(stds.mean()),
        "min_votes": int(votes.min()),
        "max_votes": int(votes.max()),
    }


__all__ = [
    "CONTENT_CLASSES",
    "DEFAULT_SPLITS",
    "ZERO_SHOT_PROMPTS",
    "caption",
    "generate",
    "latent_score",
    "render",
    "unlabeled_source",
    "vote_statistics",
    "write_synthava",
]
