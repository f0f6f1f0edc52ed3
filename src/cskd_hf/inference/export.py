"""A scoring model as an ONNX graph, for ONNX Runtime: `cskd export`, and the graph cache of `cskd score`'s default.

The graph maps normalised `pixel_values` `(N, 3, S, S)` to `probabilities` `(N, d)`, `mean_score` and `std_score`
`(N,)`. Decoding, resizing and normalisation stay outside the graph, as the scoring spec (`onnx/spec.json`, see
`cskd_hf.runtime.spec`) says, so the PyTorch model, the torch-free runtime and the browser page see the same pixels.
`cskd export` writes into the model folder's `onnx/` subfolder (`model.onnx`, and `model_quantized.onnx` for int8),
the layout transformers.js and Optimum use on the Hub. `export_to_graph_cache` exports a model folder once into the
graph cache, keyed by the hashes of its files, where `cskd score` finds it without torch; `cached_onnx_graph` does the
same for a model in memory (the pipeline), keyed by its weights.
"""

import logging
import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForImageClassification

from ..models.cskd import CSKDForAestheticScoring
from ..models.fingerprint import weights_fingerprint
from ..runtime.graph_cache import (
    ONNX_FILE,
    QUANTIZED_ONNX_FILE,
    ExportedGraph,
    default_graph_cache,
    graph_cache_key,
    onnx_path,
    source_hashes,
)
from ..runtime.spec import SPEC_FILE, ScoringSpec

logger = logging.getLogger(__name__)

INPUT_NAME = "pixel_values"
OUTPUT_NAMES = ("probabilities", "mean_score", "std_score")


class ScoringGraph(nn.Module):
    """The scoring model with tensor outputs only, as an exported graph needs."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        outputs = self.model(pixel_values=pixel_values)
        return outputs.probabilities, outputs.mean_score, outputs.std_score


def export_onnx(
    model_dir: str | os.PathLike,
    opset: int = 18,
    dynamic_batch: bool = True,
    batch_size: int = 1,
    quantize: bool = False,
    exporter: str = "auto",
) -> list[Path]:
    """Export the scoring model in `model_dir` to `model_dir/onnx/model.onnx` (and, with `quantize`, an int8 copy),
    with the scoring spec `model_dir/onnx/spec.json`.

    Args:
        opset: the ONNX opset version.
        dynamic_batch: let the batch dimension vary; otherwise the graph takes exactly `batch_size` images, which
            lets ONNX Runtime plan memory once (`OnnxScorer` pads the last batch).
        quantize: also write `model_quantized.onnx` with ONNX Runtime's dynamic int8 quantisation of the weights.
        exporter: torch's exporter (see `export_scoring_graph`).

    Returns:
        The paths written.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    spec = ScoringSpec.from_model_folder(model_dir)  # a processor the spec cannot express fails before the export
    model = load_scoring_model(model_dir)
    path = onnx_path(model_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = [export_scoring_graph(model, path, opset, dynamic_batch, batch_size, exporter)]
    quantized = onnx_path(model_dir, quantized=True)
    if quantize:
        written.append(quantize_onnx(path, quantized))
    elif quantized.exists():  # an int8 copy of earlier weights would pass for this export's
        quantized.unlink()
        logger.info("removed %s, quantised from an earlier export (export with --quantize for a new one)", quantized)
    written.append(spec.with_sources(source_hashes(model_dir)).save(path.parent / SPEC_FILE))
    return written


def load_scoring_model(model_dir: str | os.PathLike) -> CSKDForAestheticScoring:
    model = AutoModelForImageClassification.from_pretrained(model_dir)
    if not isinstance(model, CSKDForAestheticScoring):
        raise ValueError(f"{model_dir} holds a {type(model).__name__}, not a CSKD aesthetic scoring model")
    return model.eval()


EXPORTERS = ("auto", "torchscript", "dynamo")


def export_scoring_graph(
    model: CSKDForAestheticScoring,
    path: str | os.PathLike,
    opset: int = 18,
    dynamic_batch: bool = True,
    batch_size: int = 1,
    exporter: str = "auto",
) -> Path:
    """Write the scoring graph of a loaded `model` (on the CPU, in float32) to `path` (see `export_onnx`).

    `exporter`: `"torchscript"` (torch's TorchScript-based exporter), `"dynamo"` (torch.export's, with its graph
    optimiser) or `"auto"`: TorchScript's while torch has it, else, or if it fails, torch.export's. Both graphs run
    equally fast in ONNX Runtime (MobileNetV2: 4.0 ms an image), but TorchScript's exporter took 2.6 s where
    torch.export's took 8.8 s, which is most of a model's first `cskd score` (docs/speed.md). torch deprecates it
    (and will remove it): then `"auto"` is torch.export's.
    """
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
    graph = ScoringGraph(model).eval()
    example = torch.randn(batch_size, 3, model.config.image_size, model.config.image_size)
    if exporter != "dynamo":
        try:
            export_with_torchscript(graph, example, path, opset, dynamic_batch)
            # Tracing can bake a shape or a branch into the graph: check it on another batch before trusting it.
            check_graph(graph, path, batch_size=3 if dynamic_batch else batch_size)
            logger.info("wrote %s (TorchScript exporter)", path)
            return Path(path)
        except Exception as error:  # an operator without a TorchScript symbolic, or an exporter torch removed
            if exporter == "torchscript":
                raise
            logger.info(f"TorchScript exporter failed ({type(error).__name__}: {error}); using torch.export's")
    dynamic_shapes = {"pixel_values": {0: torch.export.Dim("batch", min=1, max=4096)}} if dynamic_batch else None
    program = torch.onnx.export(
        graph,
        (example,),
        dynamo=True,
        input_names=[INPUT_NAME],
        output_names=list(OUTPUT_NAMES),
        opset_version=opset,
        dynamic_shapes=dynamic_shapes,
        optimize=True,  # without it ONNX Runtime ran MobileNetV2's graph 3.5x slower
        verbose=False,
    )
    program.save(str(path))
    logger.info("wrote %s (torch.export exporter)", path)
    return Path(path)


def check_graph(graph: nn.Module, path: str | os.PathLike, batch_size: int, atol: float = 1e-3) -> None:
    """Raises ValueError when the exported graph's probabilities differ from the model's on a random batch."""
    from ..runtime.scoring import OnnxSession

    size = graph.model.config.image_size
    pixel_values = torch.randn(batch_size, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = graph(pixel_values)[0].numpy()
    actual = OnnxSession(path, providers=["CPUExecutionProvider"]).run(pixel_values.numpy())[0]
    difference = float(abs(actual - expected).max())
    if difference > atol:
        raise ValueError(f"the exported graph's probabilities differ from the model's by {difference:.2g}")


def export_with_torchscript(
    graph: nn.Module, example: torch.Tensor, path: str | os.PathLike, opset: int, dynamic_batch: bool
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch's own notice that this exporter is deprecated
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            graph,
            (example,),
            str(path),
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            opset_version=opset,
            dynamic_axes={name: {0: "batch"} for name in (INPUT_NAME, *OUTPUT_NAMES)} if dynamic_batch else None,
        )


def model_fingerprint(model: nn.Module) -> str:
    """The graph cache's key: the fingerprint of the model's config and of every parameter and buffer, equal for
    equal models whatever their path."""
    return weights_fingerprint(model, include_buffers=True, include_config=True)


def cached_onnx_graph(model: CSKDForAestheticScoring, cache_dir: str | os.PathLike | None = None) -> Path:
    """The ONNX graph of `model` (a float32 model on the CPU), exported on first use into `cache_dir/<fingerprint>/`.

    Exporting takes seconds (7 s for MobileNetV2 on 2 cores), once per set of weights; the graph is written under a
    temporary name and renamed, so processes that export the same model at once each leave a whole file.
    """
    path = Path(cache_dir or default_graph_cache()) / model_fingerprint(model) / ONNX_FILE
    if not path.is_file():
        export_atomically(model, path)
    return path


def export_to_graph_cache(
    model_dir: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    model: CSKDForAestheticScoring | None = None,
) -> ExportedGraph:
    """Export a model folder's graph and spec into the graph cache, under the hashes of its files (see
    `cskd_hf.runtime.graph_cache`), unless they are there already; returns the graph. `model`: the folder's model,
    already loaded."""
    cache_dir = Path(cache_dir or default_graph_cache())
    hashes = source_hashes(model_dir, cache_dir)
    spec = ScoringSpec.from_model_folder(model_dir).with_sources(hashes)  # fails before the export if it must
    folder = cache_dir / graph_cache_key(hashes)
    if not (folder / ONNX_FILE).is_file():
        export_atomically(model if model is not None else load_scoring_model(model_dir), folder / ONNX_FILE)
    if not (folder / SPEC_FILE).is_file():
        spec.save(folder / SPEC_FILE)  # written after the graph: a graph without a spec is not found
    return ExportedGraph(folder / ONNX_FILE, spec)


def export_atomically(model: CSKDForAestheticScoring, path: Path) -> None:
    """Export under a temporary name and rename, so processes exporting the same model at once each leave a whole
    file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, partial = tempfile.mkstemp(dir=path.parent, prefix=".partial-", suffix=".onnx")
    os.close(descriptor)
    try:
        logger.info("exporting the model to ONNX once, into %s", path.parent)
        export_scoring_graph(model, partial)
        os.chmod(partial, 0o644)  # mkstemp's 0600 would hide a shared cache's graphs from other users
        os.replace(partial, path)
    finally:
        Path(partial).unlink(missing_ok=True)


# Only matrix products: ONNX Runtime's dynamic int8 convolutions (ConvInteger) ran 12x slower than float ones for
# MobileNetV2 on CPU (benchmarks/score_throughput.py), while int8 MatMul speeds up transformer students.
QUANTIZED_OPS = ["MatMul", "Gemm"]


def quantize_onnx(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """ONNX Runtime's dynamic quantisation of the matrix products: int8 weights, activations quantised on the fly."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    target = Path(target)
    preprocessed = target.with_suffix(".preprocessed.onnx")
    # Shape inference and graph folding first, as ONNX Runtime recommends before quantising.
    quant_pre_process(str(source), str(preprocessed), skip_symbolic_shape=True)
    try:
        quantize_dynamic(
            str(preprocessed), str(target), weight_type=QuantType.QInt8, op_types_to_quantize=QUANTIZED_OPS
        )
    finally:
        preprocessed.unlink(missing_ok=True)
    logger.info("wrote %s", target)
    return target


__all__ = [
    "ONNX_FILE",
    "QUANTIZED_ONNX_FILE",
    "ScoringGraph",
    "cached_onnx_graph",
    "default_graph_cache",
    "export_onnx",
    "export_scoring_graph",
    "export_to_graph_cache",
    "model_fingerprint",
    "onnx_path",
    "quantize_onnx",
]
