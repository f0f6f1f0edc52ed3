"""Scoring with an exported graph and its spec: numpy, PIL and ONNX Runtime only, no torch.

```python
from cskd_hf.runtime import PortableScorer

scorer = PortableScorer.from_pretrained("outputs/quickstart/models/cskd-student")  # its onnx/ or the graph cache
scorer.score(Image.open("photo.jpg"))  # {"score": ..., "std": ..., "distribution": [...]}
for result in scorer.score_files(["photos/"]): ...
```
"""

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..data.images import ImageReadError, find_images, open_image, to_rgb
from .graph_cache import ExportedGraph, find_graph
from .spec import ScoringSpec

logger = logging.getLogger(__name__)


@dataclass
class ScoreResult:
    """One file's score, or the reason it has none."""

    path: str
    score: float | None = None
    std: float | None = None
    distribution: list[float] | None = None
    error: str | None = None


class GraphNotFoundError(FileNotFoundError):
    """A model folder with no exported graph, in itself or in the graph cache."""


class OnnxSession:
    """An ONNX Runtime session over a scoring graph, on CUDA when available, else on the CPU."""

    def __init__(
        self, path: str | os.PathLike, providers: Sequence[str] | None = None, num_threads: int | None = None
    ):
        try:
            import onnxruntime
        except ImportError as error:
            raise ImportError("scoring an exported graph needs onnxruntime, a dependency of cskd-hf") from error

        if not Path(path).is_file():
            raise GraphNotFoundError(f"{path}: no ONNX graph; write it with `cskd export --model MODEL`")
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        if num_threads:
            options.intra_op_num_threads = num_threads
        # Idle ONNX Runtime threads spin by default, burning the cores the decoding threads need (measured: 157
        # against 135 img/s end to end on 2 cores).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        available = onnxruntime.get_available_providers()
        providers = providers or [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        self.path = str(path)
        self.session = onnxruntime.InferenceSession(self.path, options, providers=list(providers))
        self.input_name = self.session.get_inputs()[0].name
        batch_dimension = self.session.get_inputs()[0].shape[0]
        self.fixed_batch_size = batch_dimension if isinstance(batch_dimension, int) else None

    def run(self, pixel_values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`probabilities (N, d)`, `mean_score (N,)`, `std_score (N,)` for float32 `pixel_values (N, 3, S, S)`."""
        pixels = np.ascontiguousarray(pixel_values, dtype=np.float32)
        count = len(pixels)
        if count == 0:
            raise ValueError("no images to score: pixel_values holds an empty batch")
        step = self.fixed_batch_size or max(count, 1)
        outputs = []
        for start in range(0, count, step):
            chunk = pixels[start : start + step]
            if len(chunk) < step:  # a fixed-batch graph: pad the last chunk, drop the padding's outputs
                chunk = np.concatenate([chunk, np.zeros((step - len(chunk), *chunk.shape[1:]), np.float32)])
            outputs.append([output[: count - start] for output in self.session.run(None, {self.input_name: chunk})])
        probabilities, mean_score, std_score = (np.concatenate(parts) for parts in zip(*outputs))
        return probabilities, mean_score, std_score


class PortableScorer:
    """An exported scoring graph with its spec: scores PIL images, files and folders without torch.

    Files decode in a pool of threads (PIL releases the GIL while decoding and resizing) while the graph runs
    batches; a file that cannot be read gives a result with `error` set and the others go on.
    """

    default_batch_size = 32  # faster than 16 or 64 on CPU (benchmarks/score_throughput.py)

    def __init__(self, graph: ExportedGraph, num_threads: int | None = None, providers: Sequence[str] | None = None):
        self.spec: ScoringSpec = graph.spec
        self.graph_path = graph.path
        self.session = OnnxSession(graph.path, providers=providers, num_threads=num_threads)

    @classmethod
    def from_pretrained(
        cls,
        model_name_or_path: str | os.PathLike,
        quantized: bool = False,
        cache_dir: str | os.PathLike | None = None,
        num_threads: int | None = None,
        providers: Sequence[str] | None = None,
        trust_unverified: bool = False,
    ) -> "PortableScorer":
        """The graph of a model folder or Hub repository (its `onnx/` subfolder, else the graph cache), or of a
        folder holding only a graph and its spec (`cskd export --web`'s).

        Args:
            providers: ONNX Runtime's execution providers; default: CUDA when available, else the CPU.
            trust_unverified: also run a folder graph that has no spec to tie it to the weights (see `find_graph`).

        Raises:
            GraphNotFoundError: neither holds a graph; `cskd export` (or one `cskd score` with torch) writes it.
        """
        model_dir = resolve_model_folder(model_name_or_path)
        graph = find_graph(model_dir, quantized=quantized, cache_dir=cache_dir, trust_unverified=trust_unverified)
        if graph is None:
            raise GraphNotFoundError(
                f"{model_name_or_path}: no ONNX graph in {Path(model_dir) / 'onnx'} or the graph cache; write it "
                "once with torch installed (`pip install cskd-hf[torch]`, then `cskd export --model ...`)"
            )
        return cls(graph, num_threads=num_threads, providers=providers)

    def __call__(self, pixel_values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.session.run(pixel_values)

    def score(self, image: Image.Image) -> dict:
        """The score of one PIL image (any mode), with the pipeline's keys."""
        return self.score_images([image])[0]

    def score_images(self, images: Sequence[Image.Image]) -> list[dict]:
        """`{"score", "std", "distribution"}` for each PIL image (any mode: converted as files are)."""
        if not images:
            return []
        pixel_values = np.stack([self.spec.pixel_values(to_rgb(image)) for image in images])
        probabilities, mean_score, std_score = self(pixel_values)
        return [
            {"score": float(mean), "std": float(std), "distribution": row.tolist()}
            for row, mean, std in zip(probabilities, mean_score, std_score)
        ]

    def score_files(
        self,
        inputs: Iterable[str | os.PathLike],
        batch_size: int | None = None,
        num_threads: int | None = None,
        draft: bool = True,
        progress: bool = False,
    ) -> Iterator[ScoreResult]:
        """Score files, folders (searched recursively) and glob patterns; one result per file, in order.

        Args:
            batch_size: images per run of the graph (default 32).
            num_threads: decoding threads (default: one per core, up to 8); 0 decodes in this thread.
            draft: let large JPEGs decode at a reduced size (see `ScoringSpec.draft_size`).
        """
        paths = [str(path) for path in find_images(inputs)]
        batch_size = self.default_batch_size if batch_size is None else batch_size
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        draft_size = self.spec.draft_size(draft)

        def load(path: str) -> np.ndarray | str:
            try:
                return self.spec.pixel_values(open_image(path, draft_size=draft_size))
            except ImageReadError as error:
                return str(error)
            except (OSError, ValueError, MemoryError) as error:  # one bad image never stops the others
                return f"{path}: cannot preprocess the image ({type(error).__name__}: {error})"

        workers = min(8, os.cpu_count() or 1) if num_threads is None else num_threads
        if workers == 0:
            with tqdm(total=len(paths), unit="img", disable=not progress) as bar:
                for start in range(0, len(paths), batch_size):
                    batch = paths[start : start + batch_size]
                    yield from self._score_batch(batch, [load(path) for path in batch])
                    bar.update(len(batch))
            return
        with ThreadPoolExecutor(workers) as pool, tqdm(total=len(paths), unit="img", disable=not progress) as bar:
            # Decoding runs a few batches ahead of the graph, never the whole folder (memory).
            pending = [pool.submit(load, path) for path in paths[: 4 * batch_size]]
            for start in range(0, len(paths), batch_size):
                loaded = [future.result() for future in pending[:batch_size]]
                pending = pending[batch_size:]
                ahead = start + batch_size + len(pending)
                pending += [pool.submit(load, path) for path in paths[ahead : ahead + batch_size]]
                yield from self._score_batch(paths[start : start + len(loaded)], loaded)
                bar.update(len(loaded))

    def _score_batch(self, paths: list[str], loaded: list[np.ndarray | str]) -> list[ScoreResult]:
        readable = [index for index, item in enumerate(loaded) if not isinstance(item, str)]
        results = [
            ScoreResult(path=path, error=item if isinstance(item, str) else None) for path, item in zip(paths, loaded)
        ]
        if readable:
            probabilities, mean_score, std_score = self(np.stack([loaded[index] for index in readable]))
            for row, index in enumerate(readable):
                results[index].score = float(mean_score[row])
                results[index].std = float(std_score[row])
                results[index].distribution = probabilities[row].tolist()
        return results


def resolve_model_folder(model_name_or_path: str | os.PathLike) -> Path:
    """A local model folder: the path itself, or the Hub repository's snapshot (downloaded once, then cached)."""
    if Path(model_name_or_path).is_dir():
        return Path(model_name_or_path)
    from huggingface_hub import snapshot_download  # only for Hub ids: a local folder needs none of its import

    patterns = ["*.json", "*.safetensors", "*.bin", "onnx/*"]
    return Path(snapshot_download(str(model_name_or_path), allow_patterns=patterns))


__all__ = ["GraphNotFoundError", "OnnxSession", "PortableScorer", "ScoreResult", "resolve_model_folder"]
