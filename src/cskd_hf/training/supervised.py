"""Supervised fine-tuning of a scoring model with the EMD loss (eq. 2): the CSKD teacher, or the NIMA* baseline.

    accelerate launch scripts/finetune.py --dataset ava:/data/AVA --model outputs/cfa-swin --output_dir outputs/teacher

With `--model` a CFA output folder this trains the CSKD teacher (Table 1's "CFA" rows); without it, from an
ImageNet backbone (`--architecture ... --backbone_pretrained`), it is the NIMA* baseline.
"""

import logging
from dataclasses import dataclass, field

import numpy as np
from accelerate.utils import set_seed
from datasets import Dataset

from ..data.labeled import bin_scores_of
from ..data.prepare import load_labeled
from ..hub import public_name
from ..metrics import metric_scale
from ..models.cskd import CSKDImageProcessor
from .common import (
    CommonArguments,
    make_accelerator,
    parse_arguments,
)
from .loop import build_scorer, fit_scorer

logger = logging.getLogger(__name__)


@dataclass(kw_only=True)
class ModelArguments:
    """Which scoring model to train (shared by fine-tuning and SKD's student)."""

    model: str | None = field(
        default=None, metadata={"help": "start from this saved CFA or scoring model (folder or Hub id)"}
    )
    architecture: str = field(default="mobilenetv2_100", metadata={"help": "timm backbone when --model is not given"})
    clip_backbone: str | None = field(
        default=None,
        metadata={
            "help": "instead of a timm backbone, the image tower of this CLIP checkpoint (Hub id or folder), at its "
            "input size: direct CLIP fine-tuning, the baseline CSKD argues against"
        },
    )
    backbone_pretrained: bool = field(default=False, metadata={"help": "load timm's ImageNet weights (downloads)"})
    backbone_checkpoint_path: str | None = field(default=None, metadata={"help": "local timm checkpoint file"})
    image_size: int = field(default=224, metadata={"help": "model input size"})
    head_hidden_sizes: list[int] = field(default_factory=list, metadata={"help": "hidden sizes of the MLP head"})
    head_dropout: float = field(default=0.75, metadata={"help": "dropout in the head"})


@dataclass(kw_only=True)
class DataArguments:
    dataset: str | None = field(
        default=None,
        metadata={"help": "a prepared dataset folder or Hub id, or ava:ROOT, aadb:ROOT, para:ROOT (original files)"},
    )
    train_split: str = field(default="train", metadata={"help": "split to train on"})
    validation_split: str = field(
        default="validation",
        metadata={"help": "split to validate on and choose best/ by; without it, one is carved from train"},
    )
    validation_size: int = field(
        default=2000,
        metadata={"help": "images carved (seeded) from train when there is no validation split, at most a tenth"},
    )
    ier_threshold: float | None = field(
        default=None, metadata={"help": "validation IER's error t (default: AVA's 0.5, scaled to the bins' range)"}
    )
    ier_interval_width: float | None = field(
        default=None, metadata={"help": "validation IER's interval width (default: AVA's 1, scaled to the range)"}
    )
    train_augmentation: bool = field(default=True, metadata={"help": "random crop and flip (off: centre crop)"})

    def __post_init__(self):
        if self.validation_size < 1:
            raise ValueError(f"--validation_size must be at least 1 image, got {self.validation_size}")

    def metric_scale(self, bin_scores: list[float]) -> dict[str, float]:
        """The validation metrics' scale parameters: the dataset's (`metrics.metric_scale`) unless overridden."""
        return metric_scale(bin_scores, self.ier_threshold, self.ier_interval_width)


@dataclass(kw_only=True)
class FinetuneArguments(CommonArguments, ModelArguments, DataArguments):
    def __post_init__(self):
        super().__post_init__()
        if not self.dataset:
            raise ValueError("--dataset is required")


def labeled_splits(data: DataArguments, seed: int) -> tuple[Dataset, Dataset, str]:
    """The train and validation splits, and a sentence saying which split validated (for logs and the card).

    The validation split chooses `best/`, so it is never the test split unless asked for by name: without a
    `validation_split`, a seeded random part of train validates (`validation_size`, as pyiqa carves 2,000 images
    from AVA's train; at most a tenth of train).
    """
    dataset_dict = load_labeled(data.dataset)
    if data.train_split not in dataset_dict:
        raise ValueError(f"{data.dataset} has no split {data.train_split!r}; it has {list(dataset_dict)}")
    train = dataset_dict[data.train_split]
    if data.validation_split in dataset_dict:
        if data.validation_split == "test":
            logger.warning("validating on the test split: best/ is then chosen on test")
        return train, dataset_dict[data.validation_split], f"Validated on the `{data.validation_split}` split."
    count = min(data.validation_size, len(train) // 10)
    if count < 1:
        raise ValueError(
            f"{data.dataset} has no {data.validation_split!r} split and too few train images to carve one"
        )
    # Indices drawn here, not with `train_test_split`, which writes index files next to the dataset's cache.
    carved = set(np.random.default_rng(seed).permutation(len(train))[:count].tolist())
    note = (
        f"Validated on {count} images carved from `{data.train_split}` (seed {seed}): {public_name(data.dataset)} has "
        f"no `{data.validation_split}` split, and the test split never chooses the model."
    )
    logger.info(note)
    kept = [index for index in range(len(train)) if index not in carved]
    return train.select(kept), train.select(sorted(carved)), note


def scorer_from(args: ModelArguments, bin_scores: list[float]):
    model = build_scorer(
        args.model,
        bin_scores,
        args.architecture,
        args.image_size,
        args.head_hidden_sizes,
        args.head_dropout,
        args.backbone_pretrained,
        args.backbone_checkpoint_path,
        args.clip_backbone,
    )
    return model, CSKDImageProcessor.from_model_config(model.config)


def train(args: FinetuneArguments):
    accelerator = make_accelerator(args)
    set_seed(args.seed)
    train_data, validation_data, validated_on = labeled_splits(args, args.seed)
    bin_scores = bin_scores_of(train_data)
    model, image_processor = scorer_from(args, bin_scores)
    start = args.model or args.clip_backbone or args.architecture
    summary = (
        f"Fine-tuned with the EMD loss on `{public_name(args.dataset)}` ({len(train_data)} images), "
        f"from `{public_name(start)}`. {validated_on}"
    )

    def compute_loss(model, batch, state):
        return model(pixel_values=batch["pixel_values"], labels=batch["labels"]).loss, {}

    title = "CSKD aesthetic scorer (supervised fine-tuning)"
    return fit_scorer(
        accelerator,
        args,
        model,
        image_processor,
        train_data,
        validation_data,
        compute_loss,
        title,
        summary,
        "finetune",
    )


ARGUMENTS = FinetuneArguments


def main(argv=None):
    train(parse_arguments(ARGUMENTS, argv))


__all__ = [
    "ARGUMENTS",
    "DataArguments",
    "FinetuneArguments",
    "ModelArguments",
    "labeled_splits",
    "main",
    "scorer_from",
    "train",
]
