"""Semi-supervised knowledge distillation (phase II of CSKD, eqs. 3-5), and supervised KD without unlabeled data.

    accelerate launch scripts/skd.py --dataset ava:/data/AVA --teacher outputs/teacher --model outputs/cfa-mv2 \\
        --unlabeled /data/imagenet/train parquet:/data/openimages/*.parquet --output_dir outputs/student

Each step takes B_s labeled images (`--batch_size`) and mu * B_s unlabeled images from the stream; the student is
trained with `L = L_EMD(labels) + beta * L_EMD(teacher)`, the teacher (a frozen scoring model) seeing the same
augmented view. Without `--unlabeled` this is supervised KD, the baseline of the paper's Table 6. Without `--dataset`
it is the distillation term alone on the unlabeled stream (`--batch_size` images a step), e.g. from a converted
predictor with no labels at hand; `--validation_dataset` then validates each epoch and chooses `best/`:

    accelerate launch scripts/skd.py --teacher outputs/laion-aesthetic --unlabeled /data/photos \
        --architecture mobilenetv2_100 --backbone_pretrained --validation_dataset /data/ava-parquet --output_dir out

`--teacher_cache DIR` (a variant of the paper's recipe, like CFA's teacher cache) runs the teacher once over the
unlabeled images, before training, and stores its distributions; each step then looks the unlabeled images' targets
up instead of running the teacher on mu * B_s images. The labeled images keep the live teacher. The trade-off: the
paper's teacher sees the student's augmented view (random crop and flip) of each image, the cache holds its output on
the fixed centre view, so the student learns the same target for every view of an unlabeled image.
"""

import logging
from dataclasses import dataclass, field

from accelerate import Accelerator
from accelerate.utils import set_seed

from ..data.batching import UnlabeledBatches
from ..data.labeled import bin_scores_of
from ..data.prepare import load_labeled
from ..hub import public_name
from ..models.cskd import CSKDConfig, CSKDImageProcessor
from ..models.fingerprint import weights_fingerprint
from ..teachers.scorer import ScorerTeacher
from .arguments import CommonArguments, DataArguments, ModelArguments, UnlabeledArguments, parse_arguments
from .cache import TeacherCache, build_teacher_cache, cache_is_complete
from .common import check_room_for_checkpoints, make_accelerator, teacher_dtype
from .loaders import labeled_splits, unlabeled_stream
from .models import RunCard, scorer_from
from .objectives import KnowledgeDistillation, LabelFreeDistillation, SemiSupervisedDistillation
from .phase2 import ScorerRun, fit

logger = logging.getLogger(__name__)


@dataclass(kw_only=True)
class SKDArguments(CommonArguments, ModelArguments, DataArguments, UnlabeledArguments):
    teacher: str | None = field(default=None, metadata={"help": "the fine-tuned teacher: a saved scoring model"})
    mu: int = field(default=15, metadata={"help": "unlabeled images per labeled image in a batch (the paper's mu)"})
    beta: float = field(default=15.0, metadata={"help": "weight of the distillation loss (the paper's beta)"})
    validation_dataset: str | None = field(
        default=None,
        metadata={"help": "without --dataset: a labeled dataset whose --validation_split validates the student"},
    )
    teacher_cache: str | None = field(
        default=None,
        metadata={
            "help": "folder of the teacher's distributions for the unlabeled images, computed once on their centre "
            "view (built on first use, then reused) instead of at every step on the student's augmented view as in "
            "the paper; the labeled images keep the live teacher"
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if not self.teacher:
            raise ValueError("--teacher is required")
        if not self.dataset and not self.unlabeled:
            raise ValueError("--dataset (labeled images), --unlabeled (distillation without labels) or both")
        if self.dataset and self.validation_dataset:
            raise ValueError("--validation_dataset is for runs without --dataset, which validate on its own split")
        if self.unlabeled and self.mu < 1:
            raise ValueError("--mu must be at least 1 with --unlabeled")
        if self.teacher_cache and not self.unlabeled:
            raise ValueError("--teacher_cache holds the teacher's outputs on the --unlabeled images: give --unlabeled")


def cached_teacher(
    args: SKDArguments,
    teacher: ScorerTeacher,
    image_processor: CSKDImageProcessor,
    accelerator: Accelerator,
    batch_size: int,
) -> TeacherCache:
    """The teacher's distributions for the unlabeled images, from `--teacher_cache`, built there first if needed.

    They are its outputs on the centre view. The cache records the teacher (its path, weights and dtype) and the
    student's image processor, which makes the view: a cache built for anything else is refused.
    """
    description = {
        "teacher": args.teacher,
        "teacher_weights": weights_fingerprint(teacher.model),
        "teacher_dtype": str(teacher.model.dtype),
        "image_processor": image_processor.to_dict(),
    }
    if not cache_is_complete(args.teacher_cache):
        stream = unlabeled_stream(args, args.seed, accelerator)
        batches = UnlabeledBatches(stream, image_processor, batch_size, train=False, seed=args.seed)
        build_teacher_cache(args.teacher_cache, batches, teacher, accelerator, args.num_workers, description)
    cache = TeacherCache(args.teacher_cache, description)
    logger.info(f"the unlabeled images' targets from the teacher cache in {args.teacher_cache} ({len(cache)} images)")
    return cache


def train(args: SKDArguments) -> dict:
    """Returns the final validation metrics (none without validation) and the history of the epochs."""
    accelerator = make_accelerator(args)
    set_seed(args.seed)
    if args.dataset:
        train_data, validation_data, validated_on = labeled_splits(args, args.seed)
        bin_scores = bin_scores_of(train_data)
    else:
        train_data, validation_data, validated_on = None, None, ""
        bin_scores = CSKDConfig.from_pretrained(args.teacher).bin_scores
    model, image_processor = scorer_from(args, bin_scores)
    teacher = ScorerTeacher(args.teacher, image_processor, dtype=teacher_dtype(accelerator)).to(accelerator.device)
    if teacher.bin_scores != bin_scores:
        raise ValueError(f"the teacher's bins {teacher.bin_scores} are not the dataset's {bin_scores}")
    if args.validation_dataset:
        validation_data = load_labeled(args.validation_dataset).get(args.validation_split)
        if validation_data is None:
            raise ValueError(f"{args.validation_dataset} has no split {args.validation_split!r} to validate on")
        if bin_scores_of(validation_data) != bin_scores:
            raise ValueError(f"the teacher's bins {bin_scores} are not {args.validation_dataset}'s")
    # With labels, mu unlabeled images per labeled one; without, the whole batch is unlabeled.
    unlabeled_batch_size = args.mu * args.batch_size if args.dataset else args.batch_size

    cache = None
    if args.teacher_cache:
        check_room_for_checkpoints(args.output_dir, model)  # before the teacher cache, which can take hours
        cache = cached_teacher(args, teacher, image_processor, accelerator, unlabeled_batch_size)
        if not args.dataset:
            teacher = None  # the cache replaces the live teacher; free its memory
    batches = None
    if args.unlabeled:
        batches = UnlabeledBatches(
            unlabeled_stream(args, args.seed, accelerator),
            image_processor,
            unlabeled_batch_size,
            train=args.train_augmentation,
            seed=args.seed,
            drop_last=not args.dataset,
            draft=args.draft_decode,
            uint8=True,  # normalised on the device by the loop (`phase2.step_batch`)
        )
    card = run_card(args, len(train_data) if train_data is not None else 0, validated_on)
    run = ScorerRun(model, image_processor, card, train_data, validation_data, unlabeled=batches)
    return fit(accelerator, args, run, distillation_objective(args, teacher, cache, model.config.emd_r))


def distillation_objective(
    args: SKDArguments, teacher: ScorerTeacher | None, cache: TeacherCache | None, emd_r: float
) -> KnowledgeDistillation:
    """KD with labels alone, SKD with labels and the stream, SKD without labels on the stream alone."""
    if not args.unlabeled:
        objective = KnowledgeDistillation
    elif args.dataset:
        objective = SemiSupervisedDistillation
    else:
        objective = LabelFreeDistillation
    return objective(teacher=teacher, beta=args.beta, emd_r=emd_r, cache=cache)


def run_card(args: SKDArguments, num_labeled: int, validated_on: str) -> RunCard:
    start = public_name(args.model or args.architecture)
    if not args.dataset:
        cached = "; the teacher's targets cached, on the images' centre view" if args.teacher_cache else ""
        validated = f" Validated on `{public_name(args.validation_dataset)}` ({args.validation_split})."
        return RunCard(
            title="CSKD aesthetic scorer (SKD without labels)",
            summary=(
                f"Distilled from the teacher `{public_name(args.teacher)}` on the unlabeled sources "
                f"{public_name(args.unlabeled)} alone (no labels; beta={args.beta}{cached}), from `{start}`."
                + (validated if args.validation_dataset else "")
            ),
            args=args,
            validation_split=args.validation_split,
            sources=args.unlabeled,
        )
    cached = "; the teacher's targets for them cached, on their centre view" if args.teacher_cache else ""
    unlabeled = f" and the unlabeled sources {public_name(args.unlabeled)} (mu={args.mu}{cached})"
    return RunCard(
        title=f"CSKD aesthetic scorer ({'SKD (CSKD student)' if args.unlabeled else 'supervised KD'})",
        summary=(
            f"Distilled from the teacher `{public_name(args.teacher)}` on `{public_name(args.dataset)}` "
            f"({num_labeled} labeled images)"
            + (unlabeled if args.unlabeled else "")
            + f", beta={args.beta}, from `{start}`. {validated_on}"
        ),
        args=args,
        dataset=args.dataset,
        validation_split=args.validation_split,
        sources=[args.dataset, *args.unlabeled],
    )


ARGUMENTS = SKDArguments


def main(argv=None):
    train(parse_arguments(ARGUMENTS, argv))


__all__ = ["ARGUMENTS", "SKDArguments", "cached_teacher", "main", "train"]
