"""Batch scoring of image files: what `cskd score` runs.

Each file gives one `ScoreResult`, in input order; a file that cannot be read gives a result with `error` set and
the run goes on.
"""

import csv
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm
from transformers import AutoImageProcessor, AutoModelForImageClassification

from .data.images import ImageReadError, find_images, open_image
from .models.cskd import CSKDForAestheticScoring, CSKDImageProcessor

OUTPUT_FORMATS = ("csv", "jsonl")


@dataclass
class ScoreResult:
    path: str
    score: float | None = None
    std: float | None = None
    distribution: list[float] | None = None
    error: str | None = None


class ImageFileDataset(Dataset):
    """Decodes and preprocesses image files; an unreadable file yields its error message instead of pixels."""

    def __init__(self, paths: Sequence[str | os.PathLike], image_processor: CSKDImageProcessor):
        self.paths = [str(path) for path in paths]
        self.image_processor = image_processor

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str | None]:
        try:
            image = open_image(self.paths[index])
        except ImageReadError as error:
            return index, None, str(error)
        return index, self.image_processor(image, return_tensors="pt")["pixel_values"][0], None


def collate_scored_files(items: list[tuple[int, torch.Tensor | None, str | None]]) -> dict:
    """Stack the readable images of a batch and keep the errors of the others, with their positions."""
    readable = [(index, pixels) for index, pixels, _ in items if pixels is not None]
    return {
        "indices": [index for index, _ in readable],
        "pixel_values": torch.stack([pixels for _, pixels in readable]) if readable else None,
        "errors": [(index, error) for index, _, error in items if error is not None],
    }


def resolve_device(device: str) -> torch.device:
    """`"auto"` picks CUDA, then MPS, then CPU; anything else is passed to `torch.device`."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


def load_scorer(
    model_name_or_path: str | os.PathLike, device: str = "auto"
) -> tuple[CSKDForAestheticScoring, CSKDImageProcessor]:
    """Load a scoring model and its image processor (local folder or Hub id), in eval mode on `device`."""
    model = AutoModelForImageClassification.from_pretrained(model_name_or_path)
    if not isinstance(model, CSKDForAestheticScoring):
        raise ValueError(f"{model_name_or_path} holds a {type(model).__name__}, not a CSKD aesthetic scoring model")
    image_processor = AutoImageProcessor.from_pretrained(model_name_or_path)
    return model.to(resolve_device(device)).eval(), image_processor


@torch.inference_mode()
def score_files(
    model: CSKDForAestheticScoring,
    image_processor: CSKDImageProcessor,
    paths: Sequence[str | os.PathLike],
    batch_size: int = 32,
    num_workers: int = 0,
    progress: bool = True,
) -> Iterator[ScoreResult]:
    """Score image files in batches and yield one result per file, in the order of `paths`."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    dataset = ImageFileDataset(paths, image_processor)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_scored_files)
    device = model.device
    with tqdm(total=len(dataset), unit="img", desc="scoring", disable=not progress) as bar:
        for batch in loader:
            results: dict[int, ScoreResult] = {
                index: ScoreResult(path=dataset.paths[index], error=error) for index, error in batch["errors"]
            }
            if batch["pixel_values"] is not None:
                outputs = model(pixel_values=batch["pixel_values"].to(device))
                for row, index in enumerate(batch["indices"]):
                    results[index] = ScoreResult(
                        path=dataset.paths[index],
                        score=outputs.mean_score[row].item(),
                        std=outputs.std_score[row].item(),
                        distribution=outputs.probabilities[row].float().tolist(),
                    )
            for index in sorted(results):
                yield results[index]
            bar.update(len(results))


def output_format(path: str | os.PathLike | None, requested: str | None = None) -> str:
    """The output format: as requested, else from the file extension (`.jsonl`/`.json` or `.csv`), else CSV."""
    if requested:
        if requested not in OUTPUT_FORMATS:
            raise ValueError(f"unknown output format {requested!r}; choose from {', '.join(OUTPUT_FORMATS)}")
        return requested
    suffix = Path(path).suffix.lower() if path else ""
    return "jsonl" if suffix in (".jsonl", ".json", ".ndjson") else "csv"


def write_results(
    results: Iterable[ScoreResult], stream: TextIO, fmt: str, bin_labels: Sequence[str]
) -> Iterator[ScoreResult]:
    """Write results to `stream` as they arrive (CSV with one probability column per bin, or JSON Lines).

    Yields each result after writing it, so callers can count them.
    """
    if fmt == "csv":
        writer = csv.writer(stream)
        writer.writerow(["path", "score", "std", *[f"p_{label}" for label in bin_labels], "error"])
        for result in results:
            probabilities = result.distribution or [None] * len(bin_labels)
            writer.writerow(
                [
                    result.path,
                    _format(result.score),
                    _format(result.std),
                    *map(_format, probabilities),
                    result.error or "",
                ]
            )
            yield result
    else:
        for result in results:
            stream.write(json.dumps(asdict(result)) + "\n")
            yield result


def _format(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def score_to_file(
    model_name_or_path: str,
    inputs: Sequence[str],
    output: str | None = None,
    fmt: str | None = None,
    batch_size: int = 32,
    device: str = "auto",
    num_workers: int = 0,
    progress: bool = True,
) -> tuple[int, int]:
    """Find the images in `inputs`, score them and write the results to `output` (stdout when None).

    Returns:
        (number scored, number of files that could not be read).
    """
    paths = find_images(inputs)
    fmt = output_format(output, fmt)
    model, image_processor = load_scorer(model_name_or_path, device=device)
    bin_labels = [model.config.id2label[i] for i in range(model.config.num_bins)]
    scored = failed = 0
    stream = open(output, "w", newline="", encoding="utf-8") if output else sys.stdout
    try:
        results = score_files(model, image_processor, paths, batch_size, num_workers, progress)
        for result in write_results(results, stream, fmt, bin_labels):
            if result.error:
                failed += 1
                print(f"error: {result.error}", file=sys.stderr)
            else:
                scored += 1
    finally:
        if output:
            stream.close()
    return scored, failed


__all__ = [
    "ImageFileDataset",
    "ScoreResult",
    "collate_scored_files",
    "load_scorer",
    "output_format",
    "resolve_device",
    "score_files",
    "score_to_file",
    "write_results",
]
