"""The accuracy cost of `cskd export --quantize` (int8 matrix products): the same models scored on a labeled split by
PyTorch, ONNX Runtime fp32 and ONNX Runtime int8, side by side, with the time per image of each.

    cskd quickstart                                   # trains the models on SynthAVA
    python benchmarks/int8_accuracy.py --dataset outputs/quickstart/synthava \\
        --model outputs/quickstart/models/cskd-student --model outputs/quickstart/models/clip-finetuned
"""

import argparse
import time
from pathlib import Path

import numpy as np

from cskd_hf.data.batching import evaluation_loader
from cskd_hf.data.prepare import load_labeled
from cskd_hf.inference.export import export_onnx, onnx_path
from cskd_hf.inference.scoring import OnnxScorer, TorchScorer, load_scorer
from cskd_hf.metrics import aesthetic_metrics


def mean_scores(scorer, image_processor, dataset, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray, float]:
    """Predicted and true mean scores over the split, and the forward time per image in milliseconds."""
    loader = evaluation_loader(dataset, image_processor, batch_size)
    predicted, target, seconds = [], [], 0.0
    for batch in loader:
        start = time.perf_counter()
        predicted.append(scorer(batch["pixel_values"]).mean_score)
        seconds += time.perf_counter() - start
        target.append(batch["mean_scores"].numpy())
    return np.concatenate(predicted), np.concatenate(target), 1e3 * seconds / len(dataset)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, help="a scoring model folder (repeatable)")
    parser.add_argument("--dataset", required=True, help="a labeled dataset folder")
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    dataset = load_labeled(args.dataset)[args.split]
    lines = [
        "| model | backend | SRCC | PLCC | MSE | ms/img (forward) | max abs score diff vs PyTorch |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for model_dir in args.model:
        if not onnx_path(model_dir, quantized=True).exists():
            export_onnx(model_dir, quantize=True)
        model, image_processor = load_scorer(model_dir, device="cpu")
        scorers = {
            "PyTorch": TorchScorer(model),
            "ONNX fp32": OnnxScorer(onnx_path(model_dir)),
            "ONNX int8": OnnxScorer(onnx_path(model_dir, quantized=True)),
        }
        reference = None
        for backend, scorer in scorers.items():
            predicted, target, milliseconds = mean_scores(scorer, image_processor, dataset)
            reference = predicted if reference is None else reference
            metrics = aesthetic_metrics(predicted, target)
            lines.append(
                f"| {Path(model_dir).name} | {backend} | {metrics['srcc']:.4f} | {metrics['plcc']:.4f} | "
                f"{metrics['mse']:.4f} | {milliseconds:.2f} | {np.abs(predicted - reference).max():.4f} |"
            )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
