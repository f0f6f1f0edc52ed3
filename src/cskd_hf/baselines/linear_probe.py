"""The CLIP linear probe (Hentschel et al., 2022): closed-form ridge regression on frozen CLIP image embeddings.

Embeddings are computed once per split with the scoring model's own preprocessing and cached on disk. The ridge
penalty is chosen on the validation split (lowest MSE of the mean score) from a grid scaled to the features. The probe
is saved as an ordinary `CSKDForAestheticScoring` (CLIP tower + one linear layer), so `cskd score`, the pipeline and
`cskd evaluate` use it like any other model:

- `target="mean"` regresses the mean score `s = w·x + c`. The saved head turns it into the distribution over the bins
  `p_i ∝ exp(-(b_i - s)² / 2σ²)` (σ: the training votes' mean spread), whose logits `2κ b_i s - κ b_i²` (κ = 1/2σ²)
  are linear in `x`. Its mean is a strictly increasing function of `s`, so rankings (SRCC) are the ridge's own.
- `target="distribution"` regresses the centred log vote distribution, so the head's logits are the regression itself.

    cskd probe --clip openai/clip-vit-large-patch14 --dataset ./ava-parquet --out outputs/clip-probe
"""

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ..data.batching import evaluation_loader
from ..data.labeled import bin_scores_of
from ..models.cskd import CSKDConfig, CSKDForAestheticScoring, CSKDImageProcessor, CSKDModel
from ..models.fingerprint import weights_fingerprint

logger = logging.getLogger(__name__)

TARGETS = ("mean", "distribution")
# Ridge penalties, as multiples of the mean feature variance times the sample count (scale-free).
PENALTY_GRID = np.logspace(-5, 1, 13)
LOG_EPSILON = 1e-3  # added to vote frequencies before the log: many bins have no vote


def ridge_fit(features: np.ndarray, targets: np.ndarray, penalty: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge regression in closed form, intercept unpenalised: `(weights (D, K), bias (K,))`."""
    feature_mean, target_mean = features.mean(axis=0), targets.mean(axis=0)
    centred = features - feature_mean
    gram = centred.T @ centred + penalty * np.eye(features.shape[1])
    weights = np.linalg.solve(gram, centred.T @ (targets - target_mean))
    return weights, target_mean - feature_mean @ weights


def centred_log(distributions: np.ndarray) -> np.ndarray:
    """The centred log-ratio of vote distributions: logits whose softmax is the (smoothed) distribution."""
    logs = np.log(distributions + LOG_EPSILON)
    return logs - logs.mean(axis=1, keepdims=True)


def distribution_from_mean(scores: np.ndarray, bin_scores: np.ndarray, spread: float) -> np.ndarray:
    """`p_i ∝ exp(-(b_i - s)² / 2σ²)` per score `s`: the saved mean-target probe's output distribution."""
    logits = -((bin_scores[None, :] - scores[:, None]) ** 2) / (2 * spread**2)
    logits -= logits.max(axis=1, keepdims=True)
    probabilities = np.exp(logits)
    return probabilities / probabilities.sum(axis=1, keepdims=True)


@torch.inference_mode()
def embed_split(
    model: CSKDModel, image_processor: CSKDImageProcessor, dataset, batch_size: int = 64, num_workers: int = 0
) -> dict[str, np.ndarray]:
    """CLIP image embeddings, mean scores and vote distributions of a labeled split (unreadable images skipped)."""
    loader = evaluation_loader(dataset, image_processor, batch_size, num_workers)
    parts = {"features": [], "mean_scores": [], "distributions": []}
    for batch in tqdm(loader, desc="CLIP embeddings", leave=False):
        if batch["pixel_values"] is None:
            continue
        parts["features"].append(model(pixel_values=batch["pixel_values"]).pooler_output.float())
        parts["mean_scores"].append(batch["mean_scores"])
        parts["distributions"].append(batch["labels"])
    return {name: torch.cat(tensors).numpy().astype(np.float64) for name, tensors in parts.items()}


def cached_embeddings(model, image_processor, dataset, split: str, cache_dir: str | os.PathLike | None, **kwargs):
    """`embed_split`, stored in `cache_dir/<split>-<fingerprint>.safetensors` and reused while the CLIP, the
    preprocessing and the split are the same."""
    if cache_dir is None:
        return embed_split(model, image_processor, dataset, **kwargs)
    fingerprint = hashlib.sha256(
        json.dumps(
            [weights_fingerprint(model), image_processor.to_dict(), dataset._fingerprint, len(dataset)],
            sort_keys=True,
            default=str,
        ).encode()
    ).hexdigest()[:16]
    path = Path(cache_dir) / f"{split}-{fingerprint}.safetensors"
    if path.exists():
        logger.info(f"reusing the CLIP embeddings in {path}")
        return {name: tensor.numpy() for name, tensor in load_file(str(path)).items()}
    embedded = embed_split(model, image_processor, dataset, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({name: torch.from_numpy(array) for name, array in embedded.items()}, str(path))
    return embedded


def fit_linear_probe(
    backbone: str | os.PathLike | CSKDConfig,
    dataset_dict,
    out_dir: str | os.PathLike,
    target: str = "mean",
    cache_dir: str | os.PathLike | None = None,
    train_split: str = "train",
    validation_split: str = "validation",
    batch_size: int = 64,
    num_workers: int = 0,
) -> dict:
    """Fit the probe, choose the penalty on `validation_split`, save the model to `out_dir`; returns what it chose.

    `backbone`: a CLIP (folder or Hub id: Hentschel et al.'s probe), or the config of another frozen backbone with a
    linear head over the dataset's bins (the same probe on, say, ImageNet features). The saved folder also holds
    `probe.json` (target, penalty, validation MSE per penalty).
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    if validation_split not in dataset_dict:
        raise ValueError(f"the probe chooses its penalty on {validation_split!r}, which the dataset does not have")
    bin_scores = np.asarray(bin_scores_of(dataset_dict[train_split]), dtype=np.float64)
    if isinstance(backbone, CSKDConfig):
        if backbone.head_hidden_sizes or list(backbone.bin_scores) != bin_scores.tolist():
            raise ValueError(
                f"a probe's config needs a linear head (head_hidden_sizes=[]) over the dataset's bins "
                f"{bin_scores.tolist()}, got {backbone.head_hidden_sizes} over {backbone.bin_scores}"
            )
        config = backbone
    else:
        config = CSKDConfig.for_clip(
            str(backbone), num_bins=len(bin_scores), bin_scores=bin_scores.tolist(), head_dropout=0.0
        )
    encoder = CSKDModel.from_config(config).eval()
    image_processor = CSKDImageProcessor.from_model_config(config)
    splits = {}
    for split in (train_split, validation_split):
        options = {"batch_size": batch_size, "num_workers": num_workers}
        splits[split] = cached_embeddings(encoder, image_processor, dataset_dict[split], split, cache_dir, **options)
    train, validation = splits[train_split], splits[validation_split]
    spread = float(np.sqrt((train["distributions"] * (bin_scores - train["mean_scores"][:, None]) ** 2).sum(1)).mean())
    targets = train["mean_scores"][:, None] if target == "mean" else centred_log(train["distributions"])

    def predicted_means(weights, bias, features):
        if target == "mean":
            return (features @ weights + bias)[:, 0]
        logits = features @ weights + bias
        probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (probabilities / probabilities.sum(axis=1, keepdims=True)) @ bin_scores

    scale = len(train["features"]) * train["features"].var(axis=0).mean()
    search = []
    for factor in PENALTY_GRID:
        weights, bias = ridge_fit(train["features"], targets, factor * scale)
        error = float(
            np.mean((predicted_means(weights, bias, validation["features"]) - validation["mean_scores"]) ** 2)
        )
        search.append({"penalty": float(factor * scale), "validation_mse": error})
    best = min(search, key=lambda entry: entry["validation_mse"])
    weights, bias = ridge_fit(train["features"], targets, best["penalty"])

    if target == "mean":  # logits 2κ b_i s - κ b_i², linear in the features through s = w·x + c
        kappa = 1.0 / (2 * spread**2)
        head_weight = 2 * kappa * bin_scores[:, None] * weights[:, 0][None, :]
        head_bias = 2 * kappa * bin_scores * bias[0] - kappa * bin_scores**2
    else:
        head_weight, head_bias = weights.T, bias
    model = CSKDForAestheticScoring(config)
    model.backbone.load_state_dict(encoder.backbone.state_dict())
    linear = model.head.layers[-1]
    linear.weight.data = torch.as_tensor(head_weight, dtype=torch.float32)
    linear.bias.data = torch.as_tensor(head_bias, dtype=torch.float32)
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    image_processor.save_pretrained(out_dir)
    name = backbone.architecture if isinstance(backbone, CSKDConfig) else str(backbone)
    report = {"target": target, "spread": spread, **best, "search": search, "backbone": name}
    (out_dir / "probe.json").write_text(json.dumps(report, indent=1))
    return report


__all__ = ["centred_log", "distribution_from_mean", "embed_split", "fit_linear_probe", "ridge_fit"]
