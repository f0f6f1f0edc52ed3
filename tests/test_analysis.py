"""The attention diagnostic: attention distance and entropy, of timm ViTs and CLIP towers, and `cskd analyze`."""

import json
import math

import pytest
import torch

from cskd_hf import CSKDConfig, CSKDForAestheticScoring, CSKDImageProcessor, CSKDModel
from cskd_hf.analysis import analyze_attention, attention_statistics
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
