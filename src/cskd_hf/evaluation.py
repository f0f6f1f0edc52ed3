"""Evaluating scoring models on a labeled dataset split, and the IER bar chart of the CSKD paper (Fig. 2)."""

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .data.batching import LabeledImages, collate_labeled
from .metrics import aesthetic_metrics
from .scoring import load_scorer


@torch.inference_mode()
def predict_dataset(model, image_processor, dataset, batch_size: int = 64, num_workers: int = 0, progress=True):
    """Predicted and true mean scores over a labeled split (unreadable images skipped)."""
    loader = DataLoader(
        LabeledImages(dataset, image_processor, train=False),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate_labeled,
    )
    predicted, target = [], []
    for batch in tqdm(loader, desc="evaluating", disable=not progress):
        if batch["pixel_values"] is None:
            continue
        predicted.append(model(pixel_values=batch["pixel_values"].to(model.device)).mean_score.float().cpu())
        target.append(batch["mean_scores"])
    return torch.cat(predicted).numpy(), torch.cat(target).numpy()


def evaluate_model(model_name_or_path: str | os.PathLike, dataset, threshold: float = 5.0, **kwargs) -> dict:
    """All metrics of a saved scoring model on a labeled split."""
    model, image_processor = load_scorer(model_name_or_path, device="cpu")
    predicted, target = predict_dataset(model, image_processor, dataset, **kwargs)
    return aesthetic_metrics(predicted, target, threshold=threshold)


def plot_interval_error_rates(results: dict[str, dict], path: str | os.PathLike, title: str = "") -> None:
    """Bars of the interval error rate per true-score interval, one colour per model (the paper's Fig. 2)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    intervals = sorted(
        {name for metrics in results.values() for name in metrics["ier"]}, key=lambda s: float(s.split("-")[0])
    )
    width = 0.8 / max(len(results), 1)
    figure, axes = plt.subplots(figsize=(max(6, 1.3 * len(intervals)), 4), dpi=120)
    for k, (model_name, metrics) in enumerate(results.items()):
        rates = [metrics["ier"].get(interval, {}).get("ier", np.nan) for interval in intervals]
        axes.bar(np.arange(len(intervals)) + (k - (len(results) - 1) / 2) * width, rates, width, label=model_name)
    counts = [max(m["ier"].get(i, {}).get("count", 0) for m in results.values()) for i in intervals]
    axes.set_xticks(np.arange(len(intervals)), [f"{i}\n(n={c})" for i, c in zip(intervals, counts)])
    axes.set_xlabel("true mean score interval")
    axes.set_ylabel("interval error rate (|error| > 0.5)")
    axes.set_ylim(0, 1)
    axes.set_title(title)
    axes.legend(fontsize=8, ncol=2)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


__all__ = ["evaluate_model", "plot_interval_error_rates", "predict_dataset"]
