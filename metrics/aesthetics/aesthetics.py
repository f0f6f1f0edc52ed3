"""Image aesthetics metrics for the `evaluate` library: `evaluate.load("metrics/aesthetics")` from this repository.

The numbers are those of `cskd_hf.metrics.aesthetic_metrics` (the same function computes them, so cskd-hf must be
installed): MSE, SRCC, PLCC, binary accuracy at a threshold and the interval error rate per score interval.
"""

import datasets
import evaluate

from cskd_hf.metrics import aesthetic_metrics

_DESCRIPTION = """MSE, Spearman (SRCC) and Pearson (PLCC) correlations, binary accuracy and the interval error rate
(IER, eq. 6 of Xu et al. 2023: per interval of the true score, the fraction of images predicted more than t off)
between predicted and true mean aesthetic scores."""

_CITATION = """@article{xu2023clip,
  title={CLIP Brings Better Features to Visual Aesthetics Learners},
  author={Xu, Liwu and Xu, Jinjin and Yang, Yuzhe and Huang, Yijie and Xie, Yanchun and Li, Yaqian},
  journal={arXiv preprint arXiv:2307.15640},
  year={2023}
}"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted mean scores.
    references: true mean scores, on the same scale.
    threshold: the score separating high from low aesthetic images (5 on AVA's 1..10 scale); an image is high when
        its score is strictly above it.
    interval_edges: the score intervals of the IER (default: intervals of `interval_width` covering the references).
    ier_threshold: the error beyond which a prediction counts as wrong in the IER (0.5).
    interval_width: width of the default IER intervals (1).
    interval_origin: an edge of the default intervals (0; `metric_scale` gives the lowest bin).
    The defaults are AVA's (1..10); for another scale, `cskd_hf.metrics.metric_scale(bin_scores)` gives `threshold`,
    `ier_threshold`, `interval_width` and `interval_origin` for its range (e.g. AADB's [0, 1]: t = 0.5 / 9).
Returns:
    n, mse, srcc, plcc, accuracy, ier: {"lo-hi": {"ier": rate, "count": images}}, and scale: the parameters used.
Example:
    >>> metric = evaluate.load("metrics/aesthetics")
    >>> metric.compute(predictions=[5.1, 6.2, 4.0], references=[5.0, 6.5, 4.4])["srcc"]
    1.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Aesthetics(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("float64")}
            ),
            reference_urls=["https://arxiv.org/abs/2307.15640"],
        )

    def _compute(
        self,
        predictions,
        references,
        threshold=5.0,
        interval_edges=None,
        ier_threshold=0.5,
        interval_width=1.0,
        interval_origin=0.0,
    ):
        return aesthetic_metrics(
            predictions,
            references,
            threshold=threshold,
            interval_edges=interval_edges,
            ier_threshold=ier_threshold,
            interval_width=interval_width,
            interval_origin=interval_origin,
        )
