"""Image aesthetics metrics on mean scores: MSE, SRCC, PLCC, binary accuracy and the interval error rate (eq. 6)."""

from collections.abc import Sequence

import numpy as np
from scipy import stats


def mean_score(distribution: np.ndarray, bin_scores: Sequence[float]) -> np.ndarray:
    """Mean score of `(n, d)` distributions (normalised or raw vote counts) over bins valued `bin_scores`."""
    distribution = np.asarray(distribution, dtype=np.float64)
    return distribution @ np.asarray(bin_scores, dtype=np.float64) / distribution.sum(axis=-1)


def interval_error_rates(
    predicted: np.ndarray, target: np.ndarray, interval_edges: Sequence[float], threshold: float = 0.5
) -> dict[str, dict[str, float]]:
    """IER of eq. 6: per interval of the *true* score, the fraction of images with `|predicted - target| > threshold`.

    Intervals are `[edges[k], edges[k+1])`, the last one closed; empty intervals are left out.

    Returns:
        `{"lo-hi": {"ier": rate, "count": n}}` in increasing order.
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    edges = np.asarray(interval_edges, dtype=np.float64)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"`interval_edges` must be at least two increasing values, got {list(interval_edges)}")
    errors = np.abs(predicted - target) > threshold
    rates = {}
    for k, (low, high) in enumerate(zip(edges[:-1], edges[1:])):
        last = k == len(edges) - 2
        inside = (target >= low) & ((target <= high) if last else (target < high))
        if inside.any():
            rates[f"{low:g}-{high:g}"] = {"ier": float(errors[inside].mean()), "count": int(inside.sum())}
    return rates


def default_interval_edges(target: np.ndarray, width: float = 1.0) -> np.ndarray:
    """Unit-width intervals covering the true scores (e.g. 2-3, 3-4, ..., 7-8 for AVA)."""
    low = np.floor(np.min(target) / width) * width
    high = np.ceil(np.max(target) / width) * width
    return np.arange(low, max(high, low + width) + width / 2, width)


def aesthetic_metrics(
    predicted: np.ndarray,
    target: np.ndarray,
    threshold: float = 5.0,
    interval_edges: Sequence[float] | None = None,
    ier_threshold: float = 0.5,
) -> dict:
    """All the metrics of the CSKD paper on predicted and true mean scores.

    Args:
        predicted: `(n,)` predicted mean scores.
        target: `(n,)` true mean scores (same scale).
        threshold: the score separating "high" from "low" aesthetic images for the binary accuracy (5 for AVA);
            an image is high when its score is strictly above it.
        interval_edges: score intervals of the IER; defaults to unit-width intervals covering `target`.
        ier_threshold: the error `t` of eq. 6 beyond which a prediction counts as wrong.

    Returns:
        `{"n", "mse", "srcc", "plcc", "accuracy", "ier"}`, the last as `interval_error_rates` gives it.
    """
    predicted = np.asarray(predicted, dtype=np.float64).reshape(-1)
    target = np.asarray(target, dtype=np.float64).reshape(-1)
    if predicted.shape != target.shape:
        raise ValueError(f"predicted has {predicted.size} scores but target has {target.size}")
    if predicted.size < 2:
        raise ValueError("metrics need at least two images")
    if not (np.isfinite(predicted).all() and np.isfinite(target).all()):
        raise ValueError("scores must be finite")
    if interval_edges is None:
        interval_edges = default_interval_edges(target)
    return {
        "n": int(predicted.size),
        "mse": float(np.mean((predicted - target) ** 2)),
        "srcc": float(stats.spearmanr(predicted, target).statistic),
        "plcc": float(stats.pearsonr(predicted, target).statistic),
        "accuracy": float(np.mean((predicted > threshold) == (target > threshold))),
        "ier": interval_error_rates(predicted, target, interval_edges, threshold=ier_threshold),
    }


__all__ = ["aesthetic_metrics", "default_interval_edges", "interval_error_rates", "mean_score"]
