"""Model cards for trained models (what the Hub shows as README.md)."""

import os
from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData

CITATIONS = """- Xu et al. *CLIP Brings Better Features to Visual Aesthetics Learners*, 2023 (CSKD).
- Talebi, Milanfar. *NIMA: Neural Image Assessment*, IEEE TIP 2018."""


def training_card(
    title: str,
    summary: str,
    config,
    hyperparameters: dict,
    metrics: dict | None = None,
    datasets: list[str] | None = None,
) -> ModelCard:
    """A card stub for a model written by a trainer: what it is, how it was trained, its final validation metrics."""
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag="image-classification",
        tags=["image-aesthetics", "cskd", "timm", config.architecture],
        datasets=datasets or None,
    )
    rows = "\n".join(f"| `{name}` | `{value}` |" for name, value in sorted(hyperparameters.items()))
    results = ""
    if metrics:
        scalar = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        results = "## Validation results\n\n| metric | value |\n|---|---|\n" + "\n".join(
            f"| {name} | {value:.4f} |" if isinstance(value, float) else f"| {name} | {value} |"
            for name, value in scalar.items()
        )
    content = f"""---
{card_data.to_yaml()}
---

# {title}

{summary}

Backbone: timm `{config.architecture}` at {config.image_size} px; {config.num_bins} score bins valued
{config.bin_scores}.

## Usage

```python
import cskd_hf  # registers the model classes and the pipeline
from transformers import pipeline

scorer = pipeline("image-aesthetics", model="PATH_OR_REPO_ID")
scorer("photo.jpg")  # {{'score': ..., 'std': ..., 'distribution': [...]}}
```

or `cskd score photos/ --model PATH_OR_REPO_ID`.

## Training hyper-parameters

| name | value |
|---|---|
{rows}

{results}

## Citation

{CITATIONS}
"""
    return ModelCard(content)


def save_card(card: ModelCard, out_dir: str | os.PathLike) -> None:
    card.save(Path(out_dir) / "README.md")


__all__ = ["save_card", "training_card"]
