"""`cskd evaluate`: scoring models over a labeled dataset, with metrics files, a comparison table and plots.

Plots: the interval error rate per true-score interval (the CSKD paper's Fig. 2), predicted against true mean scores
with the identity line, and the histograms of predicted and true scores.
"""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from .data.batching import evaluation_loader
from .data.labeled import bin_scores_of
from .data.prepare import load_labeled
from .inference.scoring import load_scorer
from .metrics import aesthetic_metrics, metric_scale
from .models.prediction import predict_mean_scores


@torch.inference_mode()
def predict_dataset(
    model, image_processor, dataset, batch_size: int = 64, num_workers: int = 0, tta: bool = False, progress=True
) -> tuple[np.ndarray, np.ndarray]:
    """Predicted and true mean scores over a labeled split (unreadable images skipped).

    With `tta`, the prediction is the mean over the centre crop and its horizontal flip.
    """
    loader = evaluation_loader(dataset, image_processor, batch_size, num_workers)
    return predict_mean_scores(model, loader, tta=tta, progress=progress)


def model_revision(model, model_name_or_path: str | os.PathLike) -> str:
    """The Hub commit a model was loaded from, or for a local folder a hash of its weights."""
    commit = getattr(model.config, "_commit_hash", None)
    if commit:
        return commit
    weights = Path(model_name_or_path) / "model.safetensors"
    if weights.exists():
        digest = hashlib.sha256()
        with open(weights, "rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
        return f"sha256:{digest.hexdigest()[:16]}"
    return "unknown"


def evaluate_model(
    model_name_or_path: str | os.PathLike, dataset, scale: dict[str, float] | None = None, tta: bool = False, **kwargs
) -> dict:
    """All metrics of a saved scoring model on a labeled split, at the split's scale (`metrics.metric_scale` of its
    bins) unless `scale` is given."""
    model, image_processor = load_scorer(model_name_or_path, device="cpu")
    predicted, target = predict_dataset(model, image_processor, dataset, tta=tta, **kwargs)
    return aesthetic_metrics(predicted, target, **(scale or metric_scale(bin_scores_of(dataset))))


def evaluate_models(
    models: list[str],
    dataset_spec: str,
    split: str = "test",
    out_dir: str | os.PathLike = "outputs/evaluation",
    tta: bool = False,
    batch_size: int = 64,
    num_workers: int = 0,
    device: str = "auto",
    ier_threshold: float | None = None,
    interval_width: float | None = None,
) -> dict[str, dict]:
    """Evaluate each model on `split` of a labeled dataset; write metrics, the comparison table and the plots.

    The accuracy threshold and the IER's `t` and interval width are the dataset's (`metrics.metric_scale`: AVA's
    values scaled to its range), unless `ier_threshold` / `interval_width` are given; metrics.json records them.

    Writes `<out_dir>/<model name>/metrics.json` per model (with the model revision and the dataset split evaluated),
    `comparison.md`, `ier.png`, `scatter.png` and `histogram.png`. With `tta`, each model also gets a row with
    test-time augmentation (centre + horizontal flip).
    """
    dataset = load_labeled(dataset_spec)[split]
    scale = metric_scale(bin_scores_of(dataset), ier_threshold, interval_width)
    out_dir = Path(out_dir)
    results, predictions = {}, {}
    names = _unique_names(models)
    for name, model_name_or_path in zip(names, models):
        model, image_processor = load_scorer(model_name_or_path, device=device)
        variants = [(name, False)] + ([(f"{name} +TTA", True)] if tta else [])
        for row_name, use_tta in variants:
            predicted, target = predict_dataset(
                model, image_processor, dataset, batch_size, num_workers, tta=use_tta, progress=True
            )
            metrics = aesthetic_metrics(predicted, target, **scale)
            metrics |= {
                "model": str(model_name_or_path),
                "revision": model_revision(model, model_name_or_path),
                "dataset": str(dataset_spec),
                "split": split,
                "tta": use_tta,
            }
            results[row_name], predictions[row_name] = metrics, (predicted, target)
            folder = out_dir / row_name.replace(" +TTA", "-tta")
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "metrics.json").write_text(json.dumps(metrics, indent=1))
    table = comparison_table(results)
    parameters = (
        f"Accuracy: above {scale['threshold']:g} or not. IER: |predicted - true| > {scale['ier_threshold']:g}, per "
        f"interval of {scale['interval_width']:g} of the true score."
    )
    (out_dir / "comparison.md").write_text(f"# {dataset_spec}, split `{split}`\n\n{table}\n\n{parameters}\n")
    title = f"{Path(str(dataset_spec)).name} ({split})"
    plot_interval_error_rates(results, out_dir / "ier.png", title=f"Interval error rate, {title}")
    plot_scatter(predictions, out_dir / "scatter.png", title=title)
    plot_histograms(predictions, out_dir / "histogram.png", title=title)
    print(table)
    return results


def _unique_names(models: list[str]) -> list[str]:
    names = []
    for model in models:
        name = Path(str(model).rstrip("/")).name or str(model)
        names.append(name if name not in names else f"{name}-{len(names)}")
    return names


def comparison_table(results: dict[str, dict], counts: bool = True) -> str:
    """A Markdown table of each model's metrics; `counts` adds the number of images evaluated."""
    headers = ["model", *(["N"] if counts else []), "MSE", "SRCC", "PLCC", "accuracy"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for name, m in results.items():
        metrics = [f"{m[key]:.3f}" for key in ("mse", "srcc", "plcc", "accuracy")]
        lines.append("| " + " | ".join([name, *([str(m["n"])] if counts else []), *metrics]) + " |")
    return "\n".join(lines)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_interval_error_rates(results: dict[str, dict], path: str | os.PathLike, title: str = "") -> None:
    """Bars of the interval error rate per true-score interval, one colour per model (the paper's Fig. 2)."""
    plt = _pyplot()
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


def _grid(plt, count: int):
    columns = min(3, count)
    rows = (count + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 4 * rows), dpi=110, squeeze=False)
    for extra in axes.flat[count:]:
        extra.axis("off")
    return figure, axes.flat


def plot_scatter(predictions: dict[str, tuple], path: str | os.PathLike, title: str = "") -> None:
    """Predicted against true mean score, one panel per model, with the identity line."""
    plt = _pyplot()
    figure, panels = _grid(plt, len(predictions))
    for axes, (name, (predicted, target)) in zip(panels, predictions.items()):
        low = min(predicted.min(), target.min())
        high = max(predicted.max(), target.max())
        axes.scatter(target, predicted, s=6, alpha=0.4)
        axes.plot([low, high], [low, high], color="black", linewidth=1, label="identity")
        axes.set_xlabel("true mean score")
        axes.set_ylabel("predicted mean score")
        axes.set_title(name, fontsize=10)
        axes.legend(fontsize=8, loc="upper left")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def plot_histograms(predictions: dict[str, tuple], path: str | os.PathLike, title: str = "") -> None:
    """Histograms of predicted and true mean scores, one panel per model."""
    plt = _pyplot()
    figure, panels = _grid(plt, len(predictions))
    for axes, (name, (predicted, target)) in zip(panels, predictions.items()):
        bins = np.linspace(min(predicted.min(), target.min()), max(predicted.max(), target.max()), 31)
        axes.hist(target, bins=bins, alpha=0.5, label="true")
        axes.hist(predicted, bins=bins, alpha=0.5, label="predicted")
        axes.set_xlabel("mean score")
        axes.set_ylabel("images")
        axes.set_title(name, fontsize=10)
        axes.legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


__all__ = [
    "comparison_table",
    "evaluate_model",
    "evaluate_models",
    "model_revision",
    "plot_histograms",
    "plot_interval_error_rates",
    "plot_scatter",
    "predict_dataset",
]
