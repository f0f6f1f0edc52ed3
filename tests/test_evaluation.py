"""`cskd_hf.evaluation` as `cskd evaluate` runs it: the metrics of one or more models (with and without TTA)
equal to the metrics module's on the same predictions, the comparison table, the plots and the IER parameters."""

import json

import pytest
from transformers import AutoImageProcessor, AutoModelForImageClassification

from cskd_hf.cli import main
from cskd_hf.data.prepare import load_labeled
from cskd_hf.evaluation import predict_dataset
from cskd_hf.metrics import aesthetic_metrics
from tests.training.toy import write_toy_labeled


@pytest.fixture(scope="module")
def toy_dataset(tmp_path_factory):
    return write_toy_labeled(tmp_path_factory.mktemp("toy-eval"), sizes={"train": 8, "test": 40})


def test_evaluate_two_models_writes_metrics_table_and_plots(toy_dataset, tiny_scorer_dir, tmp_path, capsys):
    out = tmp_path / "evaluation"
    second = tmp_path / "second-model"
    model = AutoModelForImageClassification.from_pretrained(tiny_scorer_dir)
    model.save_pretrained(second)
    AutoImageProcessor.from_pretrained(tiny_scorer_dir).save_pretrained(second)

    args = ["evaluate", "--model", str(tiny_scorer_dir), "--model", str(second), "--dataset", str(toy_dataset)]
    assert main([*args, "--out", str(out), "--tta", "--batch-size", "16"]) == 0
    printed = capsys.readouterr().out
    assert "| model | N | MSE | SRCC | PLCC | accuracy |" in printed

    metrics = json.loads((out / tiny_scorer_dir.name / "metrics.json").read_text())
    assert metrics["n"] == 40 and metrics["split"] == "test" and metrics["dataset"] == str(toy_dataset)
    assert metrics["revision"].startswith("sha256:") and not metrics["tta"]
    assert {"mse", "srcc", "plcc", "accuracy", "ier"} <= set(metrics)

    # The same numbers as scoring the split directly and computing the metrics module's function.
    test_split = load_labeled(str(toy_dataset))["test"]
    processor = AutoImageProcessor.from_pretrained(tiny_scorer_dir)
    predicted, target = predict_dataset(model.eval(), processor, test_split, progress=False)
    expected = aesthetic_metrics(predicted, target)
    for key in ("mse", "srcc", "plcc", "accuracy"):
        assert metrics[key] == pytest.approx(expected[key], abs=1e-6)
    assert json.loads((out / f"{tiny_scorer_dir.name}-tta" / "metrics.json").read_text())["tta"] is True

    table = (out / "comparison.md").read_text()
    assert table.count("\n| ") == 5  # header + 2 models x (plain, +TTA)
    # The metrics' parameters are the dataset's (AVA's 1..10 here) and are written down with the numbers.
    assert metrics["scale"] == {"threshold": 5.0, "ier_threshold": 0.5, "interval_width": 1.0, "interval_origin": 1.0}
    assert "IER: |predicted - true| > 0.5, per interval of 1 of the true score" in table
    for plot in ("ier.png", "scatter.png", "histogram.png"):
        assert (out / plot).stat().st_size > 10_000


def test_evaluate_takes_the_ier_parameters(toy_dataset, tiny_scorer_dir, tmp_path):
    out = tmp_path / "evaluation"
    args = ["evaluate", "--model", str(tiny_scorer_dir), "--dataset", str(toy_dataset), "--out", str(out)]
    assert main([*args, "--ier-threshold", "0.25", "--interval-width", "2"]) == 0
    metrics = json.loads((out / tiny_scorer_dir.name / "metrics.json").read_text())
    assert metrics["scale"] == {"threshold": 5.0, "ier_threshold": 0.25, "interval_width": 2.0, "interval_origin": 1.0}
    assert all(float(high) - float(low) == 2 for low, high in (interval.split("-") for interval in metrics["ier"]))
