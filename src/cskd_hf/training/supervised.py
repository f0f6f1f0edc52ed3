"""Supervised fine-tuning of a scoring model with the EMD loss (eq. 2): the CSKD teacher, or the NIMA* baseline.

    accelerate launch scripts/finetune.py --dataset ava:/data/AVA --model outputs/cfa-swin --output_dir outputs/teacher

With `--model` a CFA output folder this trains the CSKD teacher (Table 1's "CFA" rows); without it, from an
ImageNet backbone (`--architecture ... --backbone_pretrained`), it is the NIMA* baseline. The loop is phase II's
(`phase2.fit`) with labeled data alone.
"""

from dataclasses import dataclass

from accelerate.utils import set_seed

from ..data.labeled import bin_scores_of
from ..hub import public_name
from .arguments import CommonArguments, DataArguments, ModelArguments, parse_arguments
from .common import make_accelerator
from .data import labeled_splits
from .models import RunCard, scorer_from
from .phase2 import fit


@dataclass(kw_only=True)
class FinetuneArguments(CommonArguments, ModelArguments, DataArguments):
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
    card = RunCard(
        title="CSKD aesthetic scorer (supervised fine-tuning)",
        summary=(
            f"Fine-tuned with the EMD loss on `{public_name(args.dataset)}` ({len(train_data)} images), "
            f"from `{public_name(start)}`. {validated_on}"
        ),
        args=args,
        dataset=args.dataset,
        validation_split=args.validation_split,
        sources=[args.dataset],
    )
    return fit(accelerator, args, model, image_processor, card, train_data, validation_data)


ARGUMENTS = FinetuneArguments


def main(argv=None):
    train(parse_arguments(ARGUMENTS, argv))


__all__ = ["ARGUMENTS", "FinetuneArguments", "main", "train"]
