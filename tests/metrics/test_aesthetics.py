"""The `evaluate`-library metric of the repository (`metrics/aesthetics/aesthetics.py`): its numbers are those of
`cskd_hf.metrics`."""

from pathlib import Path

import evaluate
import numpy as np
import pytest

from cskd_hf.metrics import aesthetic_metrics

REPO = Path(__file__).resolve().parents[2]


def test_evaluate_library_metric_equals_the_metrics_module():
    rng = np.random.default_rng(0)
    references = rng.normal(5.4, 0.7, 100)
    predictions = references + rng.normal(0, 0.5, 100)
    metric = evaluate.load(str(REPO / "metrics" / "aesthetics"))
    result = metric.compute(predictions=predictions, references=references)
    expected = aesthetic_metrics(predictions, references)
    for key in ("n", "mse", "srcc", "plcc", "accuracy"):
        assert result[key] == pytest.approx(expected[key])
    assert result["ier"] == expected["ier"]
