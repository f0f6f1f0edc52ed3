"""CLIP as a scoring backbone (direct fine-tuning), the CLIP linear probe, and the attention diagnostic."""

import json
import math

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from transformers import (
    AutoModelForImageClassification,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
)

from cskd_hf import CSKDConfig, CSKDForAestheticScoring, CSKDImageProcessor, CSKDModel
from cskd_hf.analysis import analyze_attention, attention_statistics
from cskd_hf.baselines.linear_probe import distribution_from_mean, fit_linear_probe, ridge_fit
from cskd_hf.cli import main
from cskd_hf.evaluation import evaluate_model, predict_dataset
from cskd_hf.scoring import load_scorer
from cskd_hf.synthetic.synthava import write_synthava
from tests.helpers import tiny_config


@pytest.fixture(scope="module")
def synthava(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthava")
    return out, write_synthava(out, splits={"train": 400, "validation": 150, "test": 200}, image_size=32, seed=0)


def test_clip_tower_backbone_loads_clip_weights_and_gives_its_image_embedding(random_clip_dir, tmp_path, sample_dir):
    config = CSKDConfig.for_clip(str(random_clip_dir))
    assert config.backbone_type == "clip" and config.image_size == 32 and config.clip_vision_config["projection_dim"]
    model = CSKDForAestheticScoring.from_config(config).eval()
    vision_config = CLIPVisionConfig(**config.clip_vision_config)
    clip = CLIPVisionModelWithProjection.from_pretrained(random_clip_dir, config=vision_config).eval()
    pixel_values = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = clip(pixel_values=pixel_values).image_embeds
        features = model(pixel_values=pixel_values).pooler_output
    torch.testing.assert_close(features, expected)

    processor = CSKDImageProcessor.from_model_config(config)
    assert processor.image_mean == pytest.approx([0.4815, 0.4578, 0.4082], abs=1e-4)  # CLIP's, not ImageNet's
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixel_values=pixel_values).logits, model(pixel_values=pixel_values).logits)
    assert (
        main(["score", str(sample_dir), "--model", str(tmp_path), "--no-progress", "-o", str(tmp_path / "s.csv")]) == 0
    )


def test_ridge_fit_recovers_a_linear_map():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(500, 8))
    weights = rng.normal(size=(8, 2))
    fitted, bias = ridge_fit(features, features @ weights + [1.0, -2.0], penalty=1e-6)
    np.testing.assert_allclose(fitted, weights, atol=1e-5)
    np.testing.assert_allclose(bias, [1.0, -2.0], atol=1e-5)


@pytest.mark.parametrize("target", ["mean", "distribution"])
def test_linear_probe_beats_the_mean_predictor_and_is_a_scoring_model(random_clip_dir, synthava, tmp_path, target):
    folder, dataset = synthava
    report = fit_linear_probe(
        random_clip_dir, dataset, tmp_path / "probe", target=target, cache_dir=tmp_path / "cache"
    )
    assert report["penalty"] in [entry["penalty"] for entry in report["search"]]
    assert report["validation_mse"] == min(entry["validation_mse"] for entry in report["search"])
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 2  # train and validation embeddings

    metrics = evaluate_model(tmp_path / "probe", dataset["test"], progress=False)
    test_scores = np.asarray(dataset["test"]["mean_score"])
    mean_predictor_mse = float(np.mean((test_scores - np.mean(dataset["train"]["mean_score"])) ** 2))
    assert metrics["mse"] < 0.9 * mean_predictor_mse, (metrics, mean_predictor_mse)
    assert metrics["srcc"] > 0.2

    # A second fit reuses the cached embeddings (same files, same result).
    again = fit_linear_probe(random_clip_dir, dataset, tmp_path / "again", target=target, cache_dir=tmp_path / "cache")
    assert again["penalty"] == report["penalty"] and len(list((tmp_path / "cache").iterdir())) == 2
    assert json.loads((tmp_path / "probe" / "probe.json").read_text())["target"] == target


def test_mean_probe_ranks_exactly_as_its_ridge_regression(random_clip_dir, synthava, tmp_path):
    _, dataset = synthava
    report = fit_linear_probe(random_clip_dir, dataset, tmp_path / "probe", target="mean")
    model, processor = load_scorer(tmp_path / "probe", device="cpu")
    predicted, _ = predict_dataset(model, processor, dataset["test"], progress=False)
    with torch.no_grad():
        pixel_values = processor([row["image"].convert("RGB") for row in dataset["test"]])["pixel_values"]
        features = model(pixel_values=pixel_values).pooler_output.double().numpy()
    # Read the ridge's w and c back from the head: weight_i = 2κ b_i w, bias_i = 2κ b_i c - κ b_i².
    head, bins = model.head.layers[-1], np.asarray(model.config.bin_scores)
    kappa = 1 / (2 * report["spread"] ** 2)
    weights = head.weight.detach().double().numpy()[-1] / (2 * kappa * bins[-1])
    bias = (head.bias.detach().double().numpy()[-1] + kappa * bins[-1] ** 2) / (2 * kappa * bins[-1])
    ridge_scores = features @ weights + bias
    assert spearmanr(ridge_scores, predicted).statistic == pytest.approx(1.0, abs=1e-9)
    expected = distribution_from_mean(ridge_scores, bins, report["spread"]) @ bins
    np.testing.assert_allclose(expected, predicted, atol=1e-4)


def test_cli_probe(random_clip_dir, synthava, tmp_path, capsys):
    folder, _ = synthava
    assert (
        main(["probe", "--clip", str(random_clip_dir), "--dataset", str(folder), "--out", str(tmp_path / "probe")])
        == 0
    )
    assert "wrote the linear probe" in capsys.readouterr().out
    assert (tmp_path / "probe" / "model.safetensors").exists()


def test_attention_statistics_of_known_patterns():
    tokens = 1 + 4 * 4
    to_itself = torch.eye(tokens).expand(1, 2, tokens, tokens)
    assert attention_statistics(to_itself, num_prefix_tokens=1, image_size=64) == (0.0, pytest.approx(0.0, abs=1e-6))
    uniform = torch.full((1, 2, tokens, tokens), 1 / tokens)
    distance, entropy = attention_statistics(uniform, num_prefix_tokens=1, image_size=64)
    assert entropy == pytest.approx(math.log(tokens), rel=1e-5)
    centres = torch.stack(torch.meshgrid(torch.arange(4.0), torch.arange(4.0), indexing="ij"), -1).reshape(-1, 2) * 16
    assert distance == pytest.approx(torch.cdist(centres, centres).mean().item(), rel=1e-5)


def test_attention_of_timm_vit_and_clip_backbones_and_the_cli(random_clip_dir, tmp_path, sample_dir):
    vit = tmp_path / "vit"
    config = tiny_config("test_vit")
    CSKDForAestheticScoring(config).save_pretrained(vit)
    CSKDImageProcessor.from_model_config(config).save_pretrained(vit)
    clip = tmp_path / "clip-scorer"
    clip_config = CSKDConfig.for_clip(str(random_clip_dir))
    CSKDForAestheticScoring.from_config(clip_config).save_pretrained(clip)
    CSKDImageProcessor.from_model_config(clip_config).save_pretrained(clip)

    pixel_values = torch.randn(2, 3, 64, 64)
    result = analyze_attention(vit, pixel_values)
    depth = len(CSKDModel.from_pretrained(vit).backbone.blocks)
    assert len(result["mean_attention_distance"]) == len(result["attention_entropy"]) == depth
    assert all(0 < d < 64 * math.sqrt(2) for d in result["mean_attention_distance"])

    out = tmp_path / "attention"
    command = ["analyze", "attention", "--model", str(vit), "--model", str(clip), "--name", "vit", "--name", "clip"]
    assert main([*command, "--images", str(sample_dir), "--num-images", "3", "--out", str(out)]) == 0
    results = json.loads((out / "attention.json").read_text())
    assert set(results) == {"vit", "clip"} and results["clip"]["images"] == 3
    assert len(results["clip"]["attention_entropy"]) == clip_config.clip_vision_config["num_hidden_layers"]
    assert (out / "attention.png").stat().st_size > 0 and "| clip | 1 |" in (out / "attention.md").read_text()
