import json

import pytest
import torch
from datasets import load_dataset
from safetensors.torch import load_file
from transformers import AutoModel, AutoModelForImageClassification

from cskd_hf.cli import main
from cskd_hf.synthetic.quickstart import (
    BASELINE_ROWS,
    ROWS,
    VARIANT_ROWS,
    VIT_AFTER_CFA,
    VIT_BEFORE_CFA,
    ZERO_SHOT_ROW,
)

pytestmark = pytest.mark.slow  # about 6 minutes on 2 cores


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("quickstart")
    assert main(["quickstart", "--smoke", "--out", str(out), "--seed", "0"]) == 0
    return out


def test_every_artefact_exists_and_loads(smoke_run):
    summary = json.loads((smoke_run / "results.json").read_text())
    rows = {name for name, _ in ROWS + VARIANT_ROWS + BASELINE_ROWS} | {ZERO_SHOT_ROW, "untrained student"}
    assert set(summary["results"]) == rows
    assert (smoke_run / "ier.png").stat().st_size > 10_000
    markdown = (smoke_run / "results.md").read_text()
    assert "synthetic" in markdown and "CSKD student (SKD)" in markdown
    assert summary["total_seconds"] > 0 and "cskd-student" in summary["stage_seconds"]
    for _, folder in ROWS + VARIANT_ROWS + BASELINE_ROWS:
        model = AutoModelForImageClassification.from_pretrained(smoke_run / "models" / folder)
        assert model.config.num_bins == 10
    assert (smoke_run / "models" / "tiny-clip" / "tokenizer.json").exists()
    assert (
        AutoModelForImageClassification.from_pretrained(smoke_run / "models" / "clip-finetuned").config.backbone_type
        == "clip"
    )
    assert summary["results"][ZERO_SHOT_ROW]["score_map"]["slope"] > 0
    assert (smoke_run / "attention" / "attention.png").exists() and len(summary["attention"]) == 4
    assert "Fig. 3" in markdown and "Multi-teacher CFA student" in markdown


def test_the_fig_3_panel_compares_a_vit_before_and_after_cfa(smoke_run):
    summary = json.loads((smoke_run / "results.json").read_text())
    before, after = summary["attention"][VIT_BEFORE_CFA], summary["attention"][VIT_AFTER_CFA]
    assert len(before["mean_attention_distance"]) == len(after["mean_attention_distance"]) == 6  # test_vit's layers
    assert len(after["mean_attention_distance_per_head"][0]) == summary["plan"]["vit_model_args"]["num_heads"]
    # "before" is the backbone CFA started from: the content-pretrained checkpoint, weight for weight
    vit = AutoModel.from_pretrained(smoke_run / "models" / "content-pretrained-vit")
    checkpoint = load_file(
        smoke_run / "models" / f"content-pretrained-{summary['plan']['vit_architecture']}.safetensors"
    )
    assert checkpoint and all(
        torch.equal(vit.backbone.state_dict()[name], tensor) for name, tensor in checkpoint.items()
    )
    assert before["mean_attention_distance"] != after["mean_attention_distance"]  # CFA moved the weights
    change = summary["attention_change"]["attention_entropy"]
    assert change["change"] == pytest.approx(
        sum(after["attention_entropy"]) / 6 - sum(before["attention_entropy"]) / 6
    )
    markdown = (smoke_run / "results.md").read_text()
    assert "The paper (ViT-Tiny, before and after CFA): the mean attention distance decreases" in markdown
    assert f"entropy {change['before']:.4g} → {change['after']:.4g}" in markdown


def test_the_cskd_student_learned(smoke_run):
    results = json.loads((smoke_run / "results.json").read_text())["results"]
    # Measured on seeds 0-2: CSKD student 0.58-0.68, untrained -0.24-0.13.
    assert results["CSKD student (SKD)"]["srcc"] > results["untrained student"]["srcc"] + 0.25


def test_cskd_score_works_on_the_test_images_with_the_student(smoke_run, tmp_path, capsys):
    test = load_dataset(str(smoke_run / "synthava"), split="test").select(range(6))
    paths = []
    for i, image in enumerate(test["image"]):
        paths.append(tmp_path / f"test{i}.jpg")
        image.save(paths[-1])
    output = tmp_path / "scores.jsonl"
    student = smoke_run / "models" / "cskd-student"
    assert main(["score", *map(str, paths), "--model", str(student), "--output", str(output), "--no-progress"]) == 0
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(records) == 6 and all(1 <= r["score"] <= 10 for r in records)
