"""Batch scoring of image files: what `cskd score` runs.

Each file gives one `ScoreResult`, in input order; a file that cannot be read gives a result with `error` set and
the run goes on. Writing them to a file is the command line's part (`cskd_hf.cli.results`).
"""

import importlib.util
import logging
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm
from transformers import AutoImageProcessor, AutoModelForImageClassification

from ..data.images import ImageReadError, open_image
from ..models.cskd import CSKDForAestheticScoring, CSKDImageProcessor
from ..runtime.scoring import OnnxSession, ScoreResult
from .export import cached_onnx_graph

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnxruntime")


class ImageFileDataset(Dataset):
    """Decodes, resizes and crops image files (in DataLoader workers); an unreadable file yields its error message.

    Items are `uint8` crops: a quarter of the bytes of float pixels to pass between processes; `score_files`
    normalises the whole batch at once. With `draft`, large JPEGs decode at a reduced size that still covers the
    resize (see `open_image`): several times faster on camera photos, and scores change only slightly.
    """

    def __init__(self, paths: Sequence[str | os.PathLike], image_processor: CSKDImageProcessor, draft: bool = True):
        self.paths = [str(path) for path in paths]
        self.resize_and_crop = image_processor.resize_and_crop(train=False)
        self.draft_size = image_processor.draft_size(draft)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str | None]:
        try:
            image = open_image(self.paths[index], draft_size=self.draft_size)
        except ImageReadError as error:
            return index, None, str(error)
        return index, self.resize_and_crop(image), None


def collate_scored_files(items: list[tuple[int, torch.Tensor | None, str | None]]) -> dict:
    """Stack the readable images of a batch and keep the errors of the others, with their positions."""
    readable = [(index, pixels) for index, pixels, _ in items if pixels is not None]
    return {
        "indices": [index for index, _ in readable],
        "images": torch.stack([pixels for _, pixels in readable]) if readable else None,
        "errors": [(index, error) for index, _, error in items if error is not None],
    }


@dataclass
class BatchScores:
    """What a scorer returns for a batch: bin probabilities `(N, d)`, mean and standard deviation `(N,)`."""

    probabilities: np.ndarray
    mean_score: np.ndarray
    std_score: np.ndarray


class TorchScorer:
    """A `CSKDForAestheticScoring` model as a scorer: `inference_mode` and the channels-last memory format (faster
    convolutions on CPU and GPU)."""

    def __init__(self, model: CSKDForAestheticScoring, channels_last: bool = True):
        self.model = model.eval()
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def default_batch_size(self) -> int:
        """Large batches feed a GPU; on a CPU, batches of 16 of a channels-last network stay in cache and beat 32
        (benchmarks/score_throughput.py)."""
        return 64 if self.device.type in ("cuda", "mps") else 16

    @torch.inference_mode()
    def __call__(self, pixel_values: torch.Tensor) -> BatchScores:
        pixel_values = pixel_values.to(self.device).contiguous(memory_format=self.memory_format)
        outputs = self.model(pixel_values=pixel_values)
        return BatchScores(
            probabilities=outputs.probabilities.float().cpu().numpy(),
            mean_score=outputs.mean_score.float().cpu().numpy(),
            std_score=outputs.std_score.float().cpu().numpy(),
        )


class OnnxScorer:
    """An exported scoring graph (`cskd export`) run by ONNX Runtime on torch batches, on CUDA when available, else
    on the CPU (the torch-free form is `cskd_hf.runtime.PortableScorer`)."""

    device = torch.device("cpu")
    default_batch_size = 32  # faster than 16 or 64 on CPU (benchmarks/score_throughput.py)

    def __init__(
        self, path: str | os.PathLike, providers: Sequence[str] | None = None, num_threads: int | None = None
    ):
        self.onnx_session = OnnxSession(path, providers=providers, num_threads=num_threads)
        self.path = self.onnx_session.path
        self.session = self.onnx_session.session
        self.fixed_batch_size = self.onnx_session.fixed_batch_size

    def __call__(self, pixel_values: torch.Tensor) -> BatchScores:
        probabilities, mean_score, std_score = self.onnx_session.run(pixel_values.detach().cpu().numpy())
        return BatchScores(probabilities=probabilities, mean_score=mean_score, std_score=std_score)


def fast_scorer(model: CSKDForAestheticScoring, backend: str = "auto") -> "TorchScorer | OnnxScorer":
    """The fastest way to run `model` that is at hand: what `cskd score` and the pipeline use by default.

    `"auto"`: on the CPU, with ONNX Runtime installed, the model's ONNX graph (`cached_onnx_graph`: exported on first
    use, a few seconds, then cached), which scored a folder of photos 1.4-2x faster than the PyTorch model end to end
    (benchmarks/score_throughput.py); on a GPU, or if the export fails (logged), the PyTorch model channels-last.
    `"torch"`: always the PyTorch model; `"onnxruntime"`: the graph, failing loudly if it cannot be had.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    on_cpu_in_float32 = model.device.type == "cpu" and model.dtype == torch.float32
    if backend == "torch" or (backend == "auto" and not (on_cpu_in_float32 and onnx_runtime_installed())):
        return TorchScorer(model)
    if backend == "onnxruntime":
        if not on_cpu_in_float32:
            where = f"{model.dtype} on {model.device}"
            raise ValueError(f"the onnxruntime backend exports a float32 model on the CPU, not {where}")
        return OnnxScorer(cached_onnx_graph(model))
    try:
        return OnnxScorer(cached_onnx_graph(model))
    except Exception as error:  # any export failure (an operator ONNX lacks, ...) leaves the PyTorch path
        logger.warning(f"scoring with PyTorch: exporting the model to ONNX failed ({type(error).__name__}: {error})")
        return TorchScorer(model)


def onnx_runtime_installed() -> bool:
    """Whether ONNX Runtime and the exporter's `onnxscript` can be imported."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnxscript"))


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


def default_num_workers() -> int:
    """DataLoader processes decoding images when the user gives none: one per core up to 8, so that decoding
    overlaps the forward pass (on 2 cores, 2 workers beat 1: benchmarks/score_throughput.py)."""
    return min(8, os.cpu_count() or 1)


def score_files(
    scorer: "CSKDForAestheticScoring | TorchScorer | OnnxScorer",
    image_processor: CSKDImageProcessor,
    paths: Sequence[str | os.PathLike],
    batch_size: int | None = None,
    num_workers: int | None = None,
    progress: bool = True,
    draft: bool = True,
) -> Iterator[ScoreResult]:
    """Score image files in batches and yield one result per file, in the order of `paths`.

    Args:
        scorer: a scoring model (run as a `TorchScorer`) or a scorer such as `OnnxScorer`.
        batch_size: images per forward pass; default: the scorer's `default_batch_size`.
        num_workers: DataLoader processes decoding images; default `default_num_workers()`, 0 decodes in this process.
        draft: decode large JPEGs at a reduced size (see `ImageFileDataset`).
    """
    if isinstance(scorer, CSKDForAestheticScoring):
        scorer = TorchScorer(scorer)
    device = scorer.device
    batch_size = batch_size or scorer.default_batch_size
    num_workers = default_num_workers() if num_workers is None else num_workers
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    dataset = ImageFileDataset(paths, image_processor, draft=draft)
    num_workers = min(num_workers, math.ceil(len(dataset) / batch_size))  # no idle processes for a few files
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate_scored_files,
        prefetch_factor=4 if num_workers else None,
        pin_memory=device.type == "cuda",
    )
    with tqdm(total=len(dataset), unit="img", desc="scoring", disable=not progress) as bar:
        for batch in loader:
            results: dict[int, ScoreResult] = {
                index: ScoreResult(path=dataset.paths[index], error=error) for index, error in batch["errors"]
            }
            if batch["images"] is not None:
                scores = scorer(image_processor.to_pixel_values(batch["images"].to(device)))
                for row, index in enumerate(batch["indices"]):
                    results[index] = ScoreResult(
                        path=dataset.paths[index],
                        score=float(scores.mean_score[row]),
                        std=float(scores.std_score[row]),
                        distribution=scores.probabilities[row].tolist(),
                    )
            for index in sorted(results):
                yield results[index]
            bar.update(len(results))


__all__ = [
    "BACKENDS",
    "BatchScores",
    "ImageFileDataset",
    "OnnxScorer",
    "TorchScorer",
    "ScoreResult",
    "collate_scored_files",
    "default_num_workers",
    "fast_scorer",
    "load_scorer",
    "resolve_device",
    "score_files",
]
