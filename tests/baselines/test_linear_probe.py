"""The CLIP linear probe: the ridge fit, the probe as a scoring model, and `cskd probe`."""

import json

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from cskd_hf import CSKDConfig
from cskd_hf.baselines.linear_probe import distribution_from_mean, fit_linear_probe, ridge_fit
from cskd_hf.cli import main
from cskd_hf.evaluation import evaluate_model, predict_dataset
from cskd_hf.inference.scoring import load_scorer
from cskd_hf.synthetic.synthava import write_synthava


@pytest.fixture(scope="module")
def synthava(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthava")
    return out, write_synthava(out, splits={"train": 400, "validation": 150, "test": 200}, image_size=32, seed=0)


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


def test_the_same_probe_on_another_frozen_backbone(synthava, tmp_path):
    """Hentschel et al.'s comparison: the probe on ImageNet features, here a timm backbone's (random weights)."""
    _, dataset = synthava
    bins = [float(score) for score in range(1, 11)]
    config = CSKDConfig(architecture="test_resnet", image_size=32, bin_scores=bins, head_dropout=0.0)
    report = fit_linear_probe(config, dataset, tmp_path / "probe", target="mean")
    assert report["backbone"] == "test_resnet"
    model, _ = load_scorer(tmp_path / "probe", device="cpu")
    assert model.config.architecture == "test_resnet" and len(model.head.layers) <= 2  # dropout + linear at most
    with pytest.raises(ValueError, match="a probe's config needs a linear head"):
        fit_linear_probe(
            CSKDConfig(architecture="test_resnet", image_size=32, head_hidden_sizes=[8]), dataset, tmp_path
        )
