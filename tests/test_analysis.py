"""The attention diagnostic: attention distance and entropy, of timm ViTs and CLIP towers, and `cskd analyze`."""

import json
import math

import pytest
import torch

from cskd_hf import CSKDConfig, CSKDForAestheticScoring, CSKDImageProcessor, CSKDModel
from cskd_hf.analysis import (
    PAPER_FIG3_DIRECTIONS,
    analyze_attention,
    attention_change,
    attention_statistics,
    head_statistics,
)
from cskd_hf.cli import main
from tests.helpers import tiny_config


def test_attention_statistics_of_known_patterns():
    tokens = 1 + 4 * 4
    to_itself = torch.eye(tokens).expand(1, 2, tokens, tokens)
    assert attention_statistics(to_itself, num_prefix_tokens=1, image_size=64) == (0.0, pytest.approx(0.0, abs=1e-6))
    uniform = torch.full((1, 2, tokens, tokens), 1 / tokens)
    distance, entropy = attention_statistics(uniform, num_prefix_tokens=1, image_size=64)
    assert entropy == pytest.approx(math.log(tokens), rel=1e-5)
    centres = torch.stack(torch.meshgrid(torch.arange(4.0), torch.arange(4.0), indexing="ij"), -1).reshape(-1, 2) * 16
    assert distance == pytest.approx(torch.cdist(centres, centres).mean().item(), rel=1e-5)


def test_per_head_statistics_keep_the_spread_that_fig_3_reads():
    """Two heads, one attending to itself (distance 0, entropy 0) and one uniformly: the layer's mean is their mean
    and the variance over heads, which the paper reads beside the mean, is kept."""
    tokens = 1 + 4 * 4
    weights = torch.stack([torch.eye(tokens), torch.full((tokens, tokens), 1 / tokens)])[None]
    distance, entropy = head_statistics(weights, num_prefix_tokens=1, image_size=64)
    uniform_distance, uniform_entropy = attention_statistics(weights[:, 1:], num_prefix_tokens=1, image_size=64)
    assert distance.tolist() == pytest.approx([0.0, uniform_distance], abs=1e-5)
    assert entropy.tolist() == pytest.approx([0.0, uniform_entropy], abs=1e-5)
    assert attention_statistics(weights, 1, 64) == pytest.approx((uniform_distance / 2, uniform_entropy / 2), rel=1e-5)
    assert distance.var() == pytest.approx(uniform_distance**2 / 4, rel=1e-5)


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
    heads = CSKDModel.from_pretrained(vit).backbone.blocks[0].attn.num_heads
    assert [len(layer) for layer in result["mean_attention_distance_per_head"]] == [heads] * depth
    for mean, variance, per_head in zip(
        result["mean_attention_distance"],
        result["attention_distance_variance"],
        result["mean_attention_distance_per_head"],
    ):
        assert mean == pytest.approx(sum(per_head) / heads) and variance == pytest.approx(
            float(torch.tensor(per_head).var(unbiased=False))
        )
    assert all(0 < d < 64 * math.sqrt(2) for d in result["mean_attention_distance"])

    out = tmp_path / "attention"
    command = ["analyze", "attention", "--model", str(vit), "--model", str(clip), "--name", "vit", "--name", "clip"]
    assert main([*command, "--images", str(sample_dir), "--num-images", "3", "--out", str(out)]) == 0
    results = json.loads((out / "attention.json").read_text())
    assert set(results) == {"vit", "clip"} and results["clip"]["images"] == 3
    assert len(results["clip"]["attention_entropy"]) == clip_config.clip_vision_config["num_hidden_layers"]
    assert (out / "attention.png").stat().st_size > 0 and "| clip | 1 |" in (out / "attention.md").read_text()


def test_attention_change_reads_fig_3_in_the_papers_directions():
    before = {"mean_attention_distance": [10.0, 20.0], "attention_distance_variance": [1.0, 3.0]}
    before["attention_entropy"] = [2.0, 2.0]
    after = {"mean_attention_distance": [8.0, 16.0], "attention_distance_variance": [1.0, 1.0]}
    after["attention_entropy"] = [1.5, 2.1]
    change = attention_change(before, after)
    assert change["mean_attention_distance"] == {"before": 15.0, "after": 12.0, "change": -3.0, "as_paper": True}
    assert change["attention_distance_variance"]["change"] == -1.0  # the paper's variance rises: not as the paper
    assert change["attention_distance_variance"]["as_paper"] is False
    assert change["attention_entropy"]["change"] == pytest.approx(-0.2) and change["attention_entropy"]["as_paper"]
    assert set(change) == set(PAPER_FIG3_DIRECTIONS)
