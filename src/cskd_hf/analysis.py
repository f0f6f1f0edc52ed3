"""`cskd analyze attention`: how far and how broadly a ViT backbone attends, layer by layer and head by head (the
CSKD paper's Fig. 3, after Raghu et al.'s "Do vision transformers see like CNNs?").

For each layer and head, over the patch tokens of a set of images:

- mean attention distance: the expected distance in pixels from a query patch to the patches it attends to (the
  attention over patch keys renormalised to sum to one), averaged over queries and images;
- attention entropy: `-Σ a log a` of each query patch's attention over all tokens, averaged the same way.

Each layer's value is the mean over its heads, and the variance over its heads is kept beside it. The paper reads
Fig. 3 (ViT-Tiny before and after CFA) as: "The decrease in the mean attention distance of the CFA backbone, coupled
with an increase in its variance, indicates a diverse and evenly representation map. Similarly, the decreased entropy
suggests a greater concentration." Works for timm ViTs (`Attention` modules with `qkv`) and CLIP towers
(`q_proj`/`k_proj`); attention is recomputed from each layer's input by forward hooks, whatever fused kernel the model
runs.
"""

import json
import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .models.cskd import CSKDModel


def attention_layers(backbone: nn.Module) -> list[nn.Module]:
    """The self-attention modules of a timm ViT or a CLIP tower, in depth order."""
    layers = [
        module
        for module in backbone.modules()
        if hasattr(module, "num_heads") and (hasattr(module, "qkv") or hasattr(module, "q_proj"))
    ]
    if not layers:
        raise ValueError(f"{type(backbone).__name__} has no ViT attention layers to analyse")
    return layers


def attention_probabilities(module: nn.Module, hidden_states: torch.Tensor) -> torch.Tensor:
    """`(batch, heads, tokens, tokens)` attention weights of `module` on its input `hidden_states`."""
    batch, tokens, width = hidden_states.shape
    heads = module.num_heads
    if hasattr(module, "qkv"):  # timm
        qkv = module.qkv(hidden_states).reshape(batch, tokens, 3, heads, width // heads).permute(2, 0, 3, 1, 4)
        queries, keys = module.q_norm(qkv[0]), module.k_norm(qkv[1])
    else:  # transformers CLIP
        queries = module.q_proj(hidden_states).view(batch, tokens, heads, -1).transpose(1, 2)
        keys = module.k_proj(hidden_states).view(batch, tokens, heads, -1).transpose(1, 2)
    return ((queries * module.scale) @ keys.transpose(-2, -1)).softmax(dim=-1)


def head_statistics(weights: torch.Tensor, num_prefix_tokens: int, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per head, the mean attention distance (pixels) and entropy (nats) over the patch queries of one layer's
    `(batch, heads, tokens, tokens)` weights: two `(heads,)` arrays."""
    grid = math.isqrt(weights.shape[-1] - num_prefix_tokens)
    if grid * grid != weights.shape[-1] - num_prefix_tokens:
        raise ValueError(f"{weights.shape[-1] - num_prefix_tokens} patch tokens do not form a square grid")
    patch = image_size / grid
    rows, columns = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    centres = torch.stack([rows.flatten(), columns.flatten()], dim=1).float() * patch
    distances = torch.cdist(centres, centres)
    queries = weights[:, :, num_prefix_tokens:, :]
    to_patches = queries[..., num_prefix_tokens:]
    to_patches = to_patches / to_patches.sum(dim=-1, keepdim=True)
    distance = (to_patches * distances).sum(dim=-1).mean(dim=(0, 2))
    entropy = -(queries * queries.clamp_min(1e-12).log()).sum(dim=-1).mean(dim=(0, 2))
    return distance.double().numpy(), entropy.double().numpy()


def attention_statistics(weights: torch.Tensor, num_prefix_tokens: int, image_size: int) -> tuple[float, float]:
    """Mean attention distance (pixels) and entropy (nats) of one layer: the means over its heads."""
    distance, entropy = head_statistics(weights, num_prefix_tokens, image_size)
    return float(distance.mean()), float(entropy.mean())


@torch.inference_mode()
def analyze_attention(model_name_or_path: str | os.PathLike, pixel_values: torch.Tensor) -> dict:
    """Per-layer mean attention distance and entropy of a saved CSKD model's ViT backbone on `pixel_values`."""
    model = CSKDModel.from_pretrained(model_name_or_path).eval()
    backbone = model.backbone
    num_prefix_tokens = 1 if model.config.backbone_type == "clip" else getattr(backbone, "num_prefix_tokens", 0)
    captured: list[torch.Tensor] = []

    def capture(module, args, kwargs, output):
        hidden_states = args[0] if args else kwargs["hidden_states"]
        captured.append(attention_probabilities(module, hidden_states))

    handles = [layer.register_forward_hook(capture, with_kwargs=True) for layer in attention_layers(backbone)]
    try:
        model(pixel_values=pixel_values)
    finally:
        for handle in handles:
            handle.remove()
    per_head = [head_statistics(weights, num_prefix_tokens, model.config.image_size) for weights in captured]
    return {
        "model": str(model_name_or_path),
        "images": len(pixel_values),
        "mean_attention_distance": [float(distance.mean()) for distance, _ in per_head],
        "attention_distance_variance": [float(distance.var()) for distance, _ in per_head],  # over the heads
        "attention_entropy": [float(entropy.mean()) for _, entropy in per_head],
        "attention_entropy_variance": [float(entropy.var()) for _, entropy in per_head],
        "mean_attention_distance_per_head": [distance.tolist() for distance, _ in per_head],
        "attention_entropy_per_head": [entropy.tolist() for _, entropy in per_head],
    }


# How each statistic moves after CFA in the paper's Fig. 3 (ViT-Tiny): -1 decreases, +1 increases.
PAPER_FIG3_DIRECTIONS = {
    "mean_attention_distance": -1,
    "attention_distance_variance": +1,
    "attention_entropy": -1,
}


def attention_change(before: dict, after: dict) -> dict[str, dict]:
    """How each statistic of the paper's Fig. 3 moved from `before` to `after` (two `analyze_attention` results of
    one architecture), averaged over the layers: `before`, `after`, `change` (after - before) and `as_paper`, whether
    it moved the way the paper reports (`PAPER_FIG3_DIRECTIONS`)."""
    changes = {}
    for statistic, direction in PAPER_FIG3_DIRECTIONS.items():
        old, new = float(np.mean(before[statistic])), float(np.mean(after[statistic]))
        changes[statistic] = {
            "before": old,
            "after": new,
            "change": new - old,
            "as_paper": (new - old) * direction > 0,
        }
    return changes


def plot_attention(results: dict[str, dict], path: str | os.PathLike) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for index, (name, result) in enumerate(results.items()):
        colour = f"C{index}"
        layers = np.arange(1, len(result["mean_attention_distance"]) + 1)
        for axis, key in zip(axes, ("mean_attention_distance", "attention_entropy")):
            axis.plot(layers, result[key], marker="o", color=colour, label=name)
            per_head = result.get(f"{key}_per_head")
            if per_head:  # each head as a dot, as Fig. 3 shows the spread
                for layer, heads in zip(layers, per_head):
                    axis.scatter([layer] * len(heads), heads, s=8, color=colour, alpha=0.35)
    for axis, label in zip(axes, ("mean attention distance (pixels)", "attention entropy (nats)")):
        axis.set_xlabel("layer")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def analyze_models(
    models: list[str], images: list, out_dir: str | os.PathLike, names: list[str] | None = None
) -> dict[str, dict]:
    """Analyse each model on the same PIL images; write attention.json, attention.md and attention.png."""
    from transformers import AutoImageProcessor

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = names or [Path(str(model)).name or str(model) for model in models]
    results = {}
    for name, model in zip(names, models, strict=True):
        pixel_values = AutoImageProcessor.from_pretrained(model)(images)["pixel_values"]
        results[name] = analyze_attention(model, pixel_values)
    (out_dir / "attention.json").write_text(json.dumps(results, indent=1))
    lines = [
        "| model | layer | mean attention distance (px) | its variance over heads | entropy (nats) | its variance |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, result in results.items():
        for layer, row in enumerate(
            zip(
                result["mean_attention_distance"],
                result["attention_distance_variance"],
                result["attention_entropy"],
                result["attention_entropy_variance"],
            ),
            start=1,
        ):
            distance, distance_variance, entropy, entropy_variance = row
            cells = f"{distance:.2f} | {distance_variance:.2f} | {entropy:.3f} | {entropy_variance:.4f}"
            lines.append(f"| {name} | {layer} | {cells} |")
    (out_dir / "attention.md").write_text("\n".join(lines) + "\n")
    plot_attention(results, out_dir / "attention.png")
    return results


__all__ = [
    "PAPER_FIG3_DIRECTIONS",
    "analyze_attention",
    "analyze_models",
    "attention_change",
    "attention_layers",
    "attention_probabilities",
    "attention_statistics",
    "head_statistics",
    "plot_attention",
]
