"""benchmarks/distillation.py: the loss terms per epoch from a trainer's checkpoint, and what the labels and the
teacher know about SynthAVA's latent score on the images each student learns from."""

import importlib.util
import io
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from scipy import stats
from transformers import AutoImageProcessor, AutoModelForImageClassification

from cskd_hf.synthetic.synthava import write_synthava
from tests.benchmarks.helpers import REPO, run

spec = importlib.util.spec_from_file_location("benchmarks_distillation", REPO / "benchmarks" / "distillation.py")
distillation = importlib.util.module_from_spec(spec)
spec.loader.exec_module(distillation)


def test_loss_terms_weigh_the_distillation_by_beta():
    history = [
        {"train/epoch_loss": 0.09, "validation/srcc": 0.7},  # labels only: the supervised loss is the loss
        {
            "train/epoch_loss": 0.06 + 15 * 0.04,
            "train/epoch_loss_supervised": 0.06,
            "train/epoch_loss_distillation": 0.04,
            "validation/srcc": 0.75,
        },
    ]
    labels_only, distilled = distillation.loss_terms(history, beta=15)
    assert labels_only == {"supervised": 0.09, "distillation": None, "distillation_share": 0.0, "validation_srcc": 0.7}
    assert distilled["supervised"] == 0.06 and distilled["distillation"] == 0.04
    assert distilled["distillation_share"] == pytest.approx(0.6 / 0.66)


def test_a_run_without_checkpoints_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="kd-student: no complete checkpoint"):
        distillation.epoch_history(tmp_path / "kd-student")


def test_the_targets_are_scored_against_the_latent_score_on_each_split(tmp_path, tiny_scorer_dir):
    run = tmp_path / "run"
    write_synthava(
        run / "synthava",
        splits={"unlabeled": 24, "train": 16, "validation": 8, "test": 12},
        image_size=32,
        num_workers=1,
    )
    shutil.copytree(tiny_scorer_dir, run / "models" / distillation.TEACHER)

    quality = distillation.target_quality(run, unlabeled_images=10)

    assert list(quality) == ["train", "unlabeled", "test"]
    model = AutoModelForImageClassification.from_pretrained(tiny_scorer_dir).eval()
    processor = AutoImageProcessor.from_pretrained(tiny_scorer_dir)
    for split, count in (("train", 16), ("unlabeled", 10), ("test", 12)):
        rows = pd.concat(pd.read_parquet(path) for path in sorted((run / "synthava" / "data").glob(f"{split}-*")))
        rows = rows.iloc[:count]
        images = [Image.open(io.BytesIO(image["bytes"])).convert("RGB") for image in rows["image"]]
        with torch.no_grad():
            predicted = model(**processor(images, return_tensors="pt")).mean_score.numpy()
        latent, labels = rows["latent_score"].to_numpy(), rows["mean_score"].to_numpy()
        figures = quality[split]
        assert figures["images"] == count
        assert figures["labels_vs_latent"] == pytest.approx(stats.spearmanr(labels, latent).statistic)
        assert figures["teacher_vs_latent"] == pytest.approx(stats.spearmanr(predicted, latent).statistic, abs=1e-6)
        assert figures["teacher_vs_labels"] == pytest.approx(stats.spearmanr(predicted, labels).statistic, abs=1e-6)
        assert len(set(np.round(predicted, 6))) == count  # distinct scores: the ranks compared are not ties


def test_the_report_has_a_row_per_epoch_per_split_and_per_beta():
    kd_epoch = {
        "train/epoch_loss": 0.66,
        "train/epoch_loss_supervised": 0.06,
        "train/epoch_loss_distillation": 0.04,
        "validation/srcc": 0.75,
    }
    diagnosis = {
        "seed": 3,
        "beta": 15,
        "losses": {
            "CFA student": distillation.loss_terms([{"train/epoch_loss": 0.09, "validation/srcc": 0.7}], 15),
            "KD student": distillation.loss_terms([kd_epoch], 15),
        },
        "targets": {
            "train": {"images": 2000, "labels_vs_latent": 0.986, "teacher_vs_latent": 0.91, "teacher_vs_labels": 0.9}
        },
        "kd_at_betas": {"0": {"validation": 0.802, "test": 0.777}, "15": {"validation": 0.791, "test": 0.767}},
        "test_srcc": {"CFA student": 0.777, "KD student": 0.767},
    }
    text = distillation.report({"outputs/run": diagnosis})
    assert "## outputs/run (seed 3, β = 15)" in text and "CFA student 0.777, KD student 0.767" in text
    assert "| CFA student | 1 | 0.0900 | — | 0% | 0.700 |" in text
    assert "| KD student | 1 | 0.0600 | 0.0400 | 91% | 0.750 |" in text
    assert "| train | 2,000 | 0.986 | 0.910 | 0.900 |" in text
    assert "| 0 | 0.802 | 0.777 |\n| 15 | 0.791 | 0.767 |" in text
    assert "| KD, β |" not in distillation.report({"outputs/run": diagnosis | {"kd_at_betas": {}}})


@pytest.mark.slow  # the quickstart's smoke run with --full (shared with the quickstart's tests), then about 30 s
def test_the_script_reads_a_finished_quickstart_run(smoke_run, tmp_path):
    figures, kd_out = tmp_path / "distillation.json", tmp_path / "kd"
    arguments = ["--unlabeled-images", "64", "--kd-betas", "0", "15", "--kd-out", str(kd_out), "--json", str(figures)]
    output = run("distillation.py", str(smoke_run), *arguments)
    diagnosis = json.loads(figures.read_text())[str(smoke_run)]
    # KD trained again at the quickstart's own weight is the quickstart's KD: the same recipe, deterministically.
    recorded = json.loads((smoke_run / "results.json").read_text())["results"]["KD student"]["srcc"]
    assert diagnosis["kd_at_betas"]["15"]["test"] == pytest.approx(recorded, abs=1e-6)
    # β took effect: at 0 the loss is the supervised term alone, at 15 the sum the paper weighs.
    for beta, weight in (("0", 0.0), ("15", 15.0)):
        for epoch in distillation.epoch_history(kd_out / smoke_run.name / f"kd-student-beta-{beta}"):
            expected = epoch["train/epoch_loss_supervised"] + weight * epoch["train/epoch_loss_distillation"]
            assert epoch["train/epoch_loss"] == pytest.approx(expected, rel=1e-4)
    assert not list((smoke_run / "models").glob("kd-student-beta-*"))  # the shared run is left as it was
    assert "| 0 | " in output and "| KD, β |" in output
    for row, folder in distillation.STUDENTS.items():
        history = distillation.epoch_history(smoke_run / "models" / folder)
        assert [epoch["validation_srcc"] for epoch in diagnosis["losses"][row]] == [
            entry["validation/srcc"] for entry in history
        ]
    assert all(epoch["distillation"] is None for epoch in diagnosis["losses"]["CFA student"])
    assert all(epoch["distillation"] > 0 for epoch in diagnosis["losses"]["KD student"])
    assert diagnosis["targets"]["unlabeled"]["images"] == 64
    assert "| KD student | 1 |" in output and "| unlabeled | 64 |" in output
