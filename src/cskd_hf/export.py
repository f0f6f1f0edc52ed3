"""`cskd export`: a scoring model as an ONNX graph, for ONNX Runtime (`cskd score --backend onnxruntime`).

The graph maps normalised `pixel_values` `(N, 3, S, S)` to `probabilities` `(N, d)`, `mean_score` and `std_score`
`(N,)`. Decoding, resizing and normalisation stay in Python (the model folder's image processor), exactly as for the
PyTorch model, so both backends see the same pixels. The files go into the model folder's `onnx/` subfolder
(`model.onnx`, and `model_quantized.onnx` for int8), the layout transformers.js and Optimum use on the Hub.
"""

import logging
import os
from pathlib import Path

import torch
from torch import nn

logger = logging.getLogger(__name__)

ONNX_SUBFOLDER = "onnx"
ONNX_FILE = "model.onnx"
QUANTIZED_ONNX_FILE = "model_quantized.onnx"
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


def onnx_path(model_dir: str | os.PathLike, quantized: bool = False) -> Path:
    """Where `export_onnx` writes (and `cskd score --backend onnxruntime` looks for) the graph of a model folder."""
    return Path(model_dir) / ONNX_SUBFOLDER / (QUANTIZED_ONNX_FILE if quantized else ONNX_FILE)


def export_onnx(
    model_dir: str | os.PathLike,
    opset: int = 18,
    dynamic_batch: bool = True,
    batch_size: int = 1,
    quantize: bool = False,
) -> list[Path]:
    """Export the scoring model in `model_dir` to `model_dir/onnx/model.onnx` (and, with `quantize`, an int8 copy).

    Args:
        opset: the ONNX opset version.
        dynamic_batch: let the batch dimension vary; otherwise the graph takes exactly `batch_size` images, which
            lets ONNX Runtime plan memory once (`OnnxScorer` pads the last batch).
        quantize: also write `model_quantized.onnx` with ONNX Runtime's dynamic int8 quantisation of the weights.

    Returns:
        The paths written.
    """
    from .scoring import load_scorer

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    model, _ = load_scorer(model_dir, device="cpu")
    config = model.config
    graph = ScoringGraph(model).eval()
    example = torch.randn(batch_size, 3, config.image_size, config.image_size)
    path = onnx_path(model_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    dynamic_shapes = {"pixel_values": {0: torch.export.Dim("batch", min=1, max=4096)}} if dynamic_batch else None
    program = torch.onnx.export(
        graph,
        (example,),
        dynamo=True,
        input_names=[INPUT_NAME],
        output_names=list(OUTPUT_NAMES),
        opset_version=opset,
        dynamic_shapes=dynamic_shapes,
        optimize=True,
    )
    program.save(str(path))
    written = [path]
    logger.info("wrote %s", path)
    if quantize:
        written.append(quantize_onnx(path, onnx_path(model_dir, quantized=True)))
    return written


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


__all__ = ["ONNX_FILE", "QUANTIZED_ONNX_FILE", "ScoringGraph", "export_onnx", "onnx_path", "quantize_onnx"]
