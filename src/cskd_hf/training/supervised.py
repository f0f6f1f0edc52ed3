"""Supervised fine-tuning of a scoring model with the EMD loss (eq. 2): the CSKD teacher, or the NIMA* baseline.

    accelerate launch scripts/finetune.py --dataset ava:/data/AVA --model outputs/cfa-swin --output_dir outputs/teacher

With `--model` a CFA output folder this trains the CSKD teacher (Table 1's "CFA" rows); without it, from an
ImageNet backbone (`--architecture ... --backbone_pretrained`), it is the NIMA* baseline. With `--alignment_teacher`s
(object classifiers) it is Hou et al. (2022)'s joint mode: the EMD to the labels plus lambda times the student's
feature alignment to each classifier on the same images, in one stage:

    accelerate launch scripts/finetune.py --dataset ava:/data/AVA --architecture resnext101_32x8d \
        --backbone_pretrained --alignment_teacher timm:resnext101_32x8d.fb_wsl_ig1b_ft_in1k \
        --alignment_teacher timm:resnetv2_101x1_bit.goog_in21k_ft_in1k --image_size 300 --output_dir outputs/hou

The loop is phase II's (`phase2.fit`) with labeled data alone; the objective is `FineTuning`, or `JointAlignment`.
"""

from dataclasses import dataclass

import torch
from accelerate.utils import set_seed

from ..data.labeled import bin_scores_of
from ..hub import public_name
from ..models.cskd.modeling_cskd import CSKDProjector
from ..teachers.classifier import load_teacher, teacher_embedding_size
from .arguments import AlignmentArguments, CommonArguments, DataArguments, ModelArguments, parse_arguments
from .common import make_accelerator, teacher_dtype
from .loaders import labeled_splits
from .models import RunCard, scorer_from
from .objectives import FineTuning, JointAlignment
from .phase2 import ScorerRun, fit


@dataclass(kw_only=True)
class FinetuneArguments(CommonArguments, ModelArguments, DataArguments, AlignmentArguments):
    def __post_init__(self):
        super().__post_init__()
        if not self.dataset:
            raise ValueError("--dataset is required")


def train(args: FinetuneArguments) -> dict:
    """Returns the final validation metrics and the history of the epochs."""
    accelerator = make_accelerator(args)
    set_seed(args.seed)
    train_data, validation_data, validated_on = labeled_splits(args, args.seed)
    bin_scores = bin_scores_of(train_data)
    model, image_processor = scorer_from(args, bin_scores)
    start = args.model or args.clip_backbone or args.architecture
    objective = FineTuning(emd_r=model.config.emd_r)
    if args.alignment_teacher:
        processor, dtype = image_processor, teacher_dtype(accelerator)
        objective = JointAlignment(
            emd_r=model.config.emd_r,
            teachers=[
                load_teacher(spec, "cls", processor.image_mean, processor.image_std, dtype).to(accelerator.device)
                for spec in args.alignment_teacher
            ],
            projectors=torch.nn.ModuleList(
                CSKDProjector(model.feature_size, model.feature_size, teacher_embedding_size(spec))
                for spec in args.alignment_teacher
            ),
            weight=args.alignment_weight,
        )
    joint = (
        f" and aligned to the object classifiers {public_name(args.alignment_teacher)} on the same images "
        f"(lambda={args.alignment_weight}; Hou et al.'s joint mode)"
        if args.alignment_teacher
        else ""
    )
    card = RunCard(
        title="CSKD aesthetic scorer (supervised fine-tuning" + (", classifier feature alignment)" if joint else ")"),
        summary=(
            f"Fine-tuned with the EMD loss on `{public_name(args.dataset)}` ({len(train_data)} images){joint}, "
            f"from `{public_name(start)}`. {validated_on}"
        ),
        args=args,
        dataset=args.dataset,
        validation_split=args.validation_split,
        sources=[args.dataset],
    )
    return fit(accelerator, args, ScorerRun(model, image_processor, card, train_data, validation_data), objective)


ARGUMENTS = FinetuneArguments


def main(argv=None):
    train(parse_arguments(ARGUMENTS, argv))


__all__ = ["ARGUMENTS", "FinetuneArguments", "main", "train"]
