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

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader

from ..data.batching import UnlabeledBatches, worker_processes
from ..data.labeled import bin_scores_of
from ..data.prepare import load_labeled
from ..data.unlabeled import load_unlabeled
from ..hub import public_name
from ..losses import earth_movers_distance, skd_loss
from ..models.cskd import CSKDConfig, CSKDImageProcessor
from ..teachers.scorer import ScorerTeacher
from .cache import TeacherCache, build_teacher_cache, cache_is_complete
from .common import (
    CommonArguments,
    TrainerState,
    check_room_for_checkpoints,
    evaluate_scorer,
    init_trackers,
    labeled_loader,
    make_accelerator,
    parse_arguments,
    resume,
    teacher_dtype,
    weights_fingerprint,
)
from .loop import export_model, fit_scorer, train_on_stream, validate
from .supervised import DataArguments, ModelArguments, labeled_splits, scorer_from

logger = logging.getLogger(__name__)


@dataclass(kw_only=True)
class UnlabeledArguments:
    unlabeled: list[str] = field(
        default_factory=list,
        metadata={"help": "unlabeled image sources (folders, parquet:GLOB, webdataset tars, hub:ID); none: plain KD"},
    )
    unlabeled_probabilities: list[float] | None = field(
        default=None, metadata={"help": "sampling probability of each unlabeled source"}
    )
    shuffle_buffer: int = field(default=1000, metadata={"help": "shuffle buffer of the unlabeled stream"})


def unlabeled_stream(args: UnlabeledArguments, seed: int, accelerator):
    """This process's part of the unlabeled corpus.

    Sharded here and kept out of `accelerator.prepare`, which would shard it a second time.
    """
    return load_unlabeled(
        args.unlabeled,
        args.unlabeled_probabilities,
        seed=seed,
        shuffle_buffer=args.shuffle_buffer,
        rank=accelerator.process_index,
        world_size=accelerator.num_processes,
    )


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


class UnlabeledFeed:
    """Unlabeled batches for SKD's steps: cycles through the stream (a new epoch when it ends), resumable."""

    def __init__(self, batches: UnlabeledBatches, num_workers: int, seed: int, state: TrainerState):
        self.batches, self.num_workers, self.seed, self.state = batches, num_workers, seed, state
        self.batches.resume_from(state.stream_epoch, state.stream_read)
        self.iterator = None

    def _loader(self) -> DataLoader:
        # Its own generator: creating the iterator must not draw from the global RNG (dropout's), or a resumed run
        # would diverge from an uninterrupted one.
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            self.batches, batch_size=None, generator=generator, **worker_processes(self.batches, self.num_workers)
        )

    def next(self) -> dict:
        for _ in range(2):
            if self.iterator is None:
                self.iterator = iter(self._loader())
            batch = next(self.iterator, None)
            if batch is not None:
                self.state.stream_read += batch["num_read"]
                self.state.skipped_images += batch["num_skipped"]
                return batch
            self.state.stream_epoch, self.state.stream_read = self.state.stream_epoch + 1, 0
            self.batches.set_epoch(self.state.stream_epoch)
            self.iterator = None
        raise RuntimeError("the unlabeled stream is empty")


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


def train(args: SKDArguments):
    if not args.dataset:
        return distil_without_labels(args)
    accelerator = make_accelerator(args)
    set_seed(args.seed)
    train_data, validation_data, validated_on = labeled_splits(args, args.seed)
    bin_scores = bin_scores_of(train_data)
    model, image_processor = scorer_from(args, bin_scores)
    teacher = ScorerTeacher(args.teacher, image_processor, dtype=teacher_dtype(accelerator)).to(accelerator.device)
    if teacher.bin_scores != bin_scores:
        raise ValueError(f"the teacher's bins {teacher.bin_scores} are not the dataset's {bin_scores}")

    cache = None
    if args.teacher_cache:
        check_room_for_checkpoints(args.output_dir, model)  # before the teacher cache, which can take hours
        cache = cached_teacher(args, teacher, image_processor, accelerator, args.mu * args.batch_size)
    batches = None
    if args.unlabeled:
        batches = UnlabeledBatches(
            unlabeled_stream(args, args.seed, accelerator),
            image_processor,
            args.mu * args.batch_size,
            train=args.train_augmentation,
            seed=args.seed,
        )
    feeds = []  # made at the first step, from the (possibly resumed) state the loop passes
    emd_r = model.config.emd_r

    def compute_loss(model, batch, state):
        labeled = pixel_values = batch["pixel_values"]
        unlabeled_keys = []
        if batches is not None:
            if not feeds:
                feeds.append(UnlabeledFeed(batches, args.num_workers, args.seed, state))
            unlabeled = feeds[0].next()
            if unlabeled["pixel_values"] is not None:
                pixel_values = torch.cat([labeled, unlabeled["pixel_values"].to(labeled.device)])
                unlabeled_keys = unlabeled["keys"]
        if cache is None:
            targets = teacher(pixel_values)  # the teacher sees the student's view of every image
        else:
            targets = torch.cat([teacher(labeled), cache.lookup(unlabeled_keys).to(labeled.device)])
        student = model(pixel_values=pixel_values).probabilities
        loss, supervised, distillation = skd_loss(student, batch["labels"], targets, beta=args.beta, r=emd_r)
        return loss, {"train/loss_supervised": supervised.item(), "train/loss_distillation": distillation.item()}

    kind = "SKD (CSKD student)" if batches is not None else "supervised KD"
    cached = "; the teacher's targets for them cached, on their centre view" if cache is not None else ""
    summary = (
        f"Distilled from the teacher `{public_name(args.teacher)}` on `{public_name(args.dataset)}` "
        f"({len(train_data)} labeled images)"
        + (
            f" and the unlabeled sources {public_name(args.unlabeled)} (mu={args.mu}{cached})"
            if batches is not None
            else ""
        )
        + f", beta={args.beta}, from `{public_name(args.model or args.architecture)}`. {validated_on}"
    )
    title = f"CSKD aesthetic scorer ({kind})"
    return fit_scorer(
        accelerator, args, model, image_processor, train_data, validation_data, compute_loss, title, summary, "skd"
    )


def distil_without_labels(args: SKDArguments) -> dict:
    """SKD's distillation term alone (`beta * L_EMD(teacher)`) on the unlabeled stream: the student learns the
    teacher's distributions, each step on `--batch_size` images; validation on `--validation_dataset` if given.
    Returns the final validation metrics (empty without validation) and the history."""
    accelerator = make_accelerator(args)
    set_seed(args.seed)
    bin_scores = CSKDConfig.from_pretrained(args.teacher).bin_scores
    model, image_processor = scorer_from(args, bin_scores)
    teacher = ScorerTeacher(args.teacher, image_processor, dtype=teacher_dtype(accelerator)).to(accelerator.device)
    validation_loader = None
    if args.validation_dataset:
        validation = load_labeled(args.validation_dataset).get(args.validation_split)
        if validation is None:
            raise ValueError(f"{args.validation_dataset} has no split {args.validation_split!r} to validate on")
        if bin_scores_of(validation) != bin_scores:
            raise ValueError(f"the teacher's bins {bin_scores} are not {args.validation_dataset}'s")
        validation_loader = labeled_loader(validation, image_processor, args, train=False, batch_size=args.batch_size)
    check_room_for_checkpoints(args.output_dir, model)
    cache = None
    if args.teacher_cache:
        cache = cached_teacher(args, teacher, image_processor, accelerator, args.batch_size)
        teacher = None  # the cache replaces the live teacher; free its memory
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    model, optimizer = accelerator.prepare(model, optimizer)
    if validation_loader is not None:
        validation_loader = accelerator.prepare(validation_loader)
    state, last_checkpoint = resume(accelerator, args)
    init_trackers(accelerator, "skd", args)
    stream = unlabeled_stream(args, args.seed, accelerator)
    batches = UnlabeledBatches(
        stream, image_processor, args.batch_size, train=args.train_augmentation, seed=args.seed, drop_last=True
    )
    emd_r = accelerator.unwrap_model(model).config.emd_r
    scale = args.metric_scale(bin_scores)
    title = "CSKD aesthetic scorer (SKD without labels)"
    cached = "; the teacher's targets cached, on the images' centre view" if cache is not None else ""
    summary = (
        f"Distilled from the teacher `{public_name(args.teacher)}` on the unlabeled sources "
        f"{public_name(args.unlabeled)} alone (no labels; beta={args.beta}{cached}), from "
        f"`{public_name(args.model or args.architecture)}`."
        + (
            f" Validated on `{public_name(args.validation_dataset)}` ({args.validation_split})."
            if validation_loader is not None
            else ""
        )
    )

    def loss_for(batch, pixel_values):
        if cache is None:
            targets = teacher(pixel_values)
        else:
            targets = cache.lookup(batch["keys"]).to(pixel_values.device)
        return lambda: (
            args.beta * earth_movers_distance(model(pixel_values=pixel_values).probabilities, targets, emd_r).mean()
        )

    def export_best(metrics: dict) -> None:
        export_model(accelerator, model, image_processor, f"{args.output_dir}/best", title, summary, args, metrics)

    def end_of_epoch(epoch: int) -> dict:
        if validation_loader is None:
            return {}
        return validate(model, validation_loader, accelerator, scale, state, export_best)

    train_on_stream(
        accelerator, args, model, optimizer, batches, state, last_checkpoint, loss_for, "SKD steps", end_of_epoch
    )
    metrics = evaluate_scorer(model, validation_loader, accelerator, scale) if validation_loader is not None else {}
    export_model(accelerator, model, image_processor, args.output_dir, title, summary, args, metrics or None)
    accelerator.end_training()
    return {**metrics, "history": state.history}


ARGUMENTS = SKDArguments


def main(argv=None):
    train(parse_arguments(ARGUMENTS, argv))


__all__ = ["ARGUMENTS", "SKDArguments", "UnlabeledArguments", "main", "train"]
