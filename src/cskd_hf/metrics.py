"""Image aesthetics metrics on mean scores: MSE, SRCC, PLCC, binary accuracy and the interval error rate (eq. 6).

The accuracy threshold, the IER's error `t` and its interval width depend on the score scale. The paper's values are
AVA's (5, t = 0.5 and unit intervals on its 1..10 scale, a range of 9); `metric_scale` carries them to another range
in proportion (AADB's [0, 1]: t = 0.5 / 9; PARA's 1..5: t = 2 / 9), so that a model is held to the same relative
precision on every dataset.
"""

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


AVA_BIN_SCORES = [float(score) for score in range(1, 11)]
AVA_SCORE_RANGE = 9.0


def metric_scale(
    bin_scores: Sequence[float], ier_threshold: float | None = None, interval_width: float | None = None
) -> dict[str, float]:
    """The scale-dependent metric parameters for a dataset's bins, as `aesthetic_metrics` keywords:
    `threshold` (5 on AVA, the middle of the range elsewhere), `ier_threshold` and `interval_width` (AVA's 0.5 and 1
    scaled by the range over AVA's 9, unless given), and `interval_origin` (the lowest bin: intervals start where the
    scale does, as AVA's start at 1)."""
    low, high = float(bin_scores[0]), float(bin_scores[-1])
    ratio = (high - low) / AVA_SCORE_RANGE
    threshold = 5.0 if [float(score) for score in bin_scores] == AVA_BIN_SCORES else (low + high) / 2
    return {
        "threshold": threshold,
        "ier_threshold": 0.5 * ratio if ier_threshold is None else ier_threshold,
        "interval_width": ratio if interval_width is None else interval_width,
        "interval_origin": low,
    }


def default_interval_edges(target: np.ndarray, width: float = 1.0, origin: float = 0.0) -> np.ndarray:
    """Intervals of `width` covering the true scores, at `origin + k * width` (e.g. 2-3, ..., 7-8 for AVA)."""
    first = np.floor((np.min(target) - origin) / width)
    last = max(np.ceil((np.max(target) - origin) / width), first + 1)
    return origin + width * np.arange(first, last + 1)


def aesthetic_metrics(
    predicted: np.ndarray,
    target: np.ndarray,
    threshold: float = 5.0,
    interval_edges: Sequence[float] | None = None,
    ier_threshold: float = 0.5,
    interval_width: float = 1.0,
    interval_origin: float = 0.0,
) -> dict:
    """All the metrics of the CSKD paper on predicted and true mean scores.

    Args:
        predicted: `(n,)` predicted mean scores.
        target: `(n,)` true mean scores (same scale).
        threshold: the score separating "high" from "low" aesthetic images for the binary accuracy (5 for AVA);
            an image is high when its score is strictly above it.
        interval_edges: score intervals of the IER; defaults to intervals of `interval_width` covering `target`.
        ier_threshold: the error `t` of eq. 6 beyond which a prediction counts as wrong.
        interval_width: width of the default IER intervals.
        interval_origin: where the default intervals start (one of their edges).
    The defaults are AVA's; `metric_scale(bin_scores)` gives another dataset's.

    Returns:
        `{"n", "mse", "srcc", "plcc", "accuracy", "ier", "scale"}`: `ier` as `interval_error_rates` gives it, `scale`
        the parameters used (`threshold`, `ier_threshold`, `interval_width`, `interval_origin`).
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
        interval_edges = default_interval_edges(target, interval_width, interval_origin)
    return {
        "n": int(predicted.size),
        "mse": float(np.mean((predicted - target) ** 2)),
        "srcc": float(stats.spearmanr(predicted, target).statistic),
        "plcc": float(stats.pearsonr(predicted, target).statistic),
        "accuracy": float(np.mean((predicted > threshold) == (target > threshold))),
        "ier": interval_error_rates(predicted, target, interval_edges, threshold=ier_threshold),
        "scale": {
            "threshold": threshold,
            "ier_threshold": ier_threshold,
            "interval_width": interval_width,
            "interval_origin": interval_origin,
        },
    }


__all__ = ["aesthetic_metrics", "default_interval_edges", "interval_error_rates", "mean_score", "metric_scale"]
