"""Semi-supervised knowledge distillation (phase II of CSKD, eqs. 3-5), and supervised KD without unlabeled data.

    accelerate launch scripts/skd.py --dataset ava:/data/AVA --teacher outputs/teacher --model outputs/cfa-mv2 \\
        --unlabeled /data/imagenet/train parquet:/data/openimages/*.parquet --output_dir outputs/student

Each step takes B_s labeled images (`--batch_size`) and mu * B_s unlabeled images from the stream; the student is
trained with `L = L_EMD(labels) + beta * L_EMD(teacher)`, the teacher (a frozen scoring model) seeing the same
augmented view. Without `--unlabeled` this is supervised KD, the baseline of the paper's Table 6.
"""

import logging
from dataclasses import dataclass, field

import torch
from accelerate.utils import set_seed
from torch.utils.data import DataLoader

from ..data.batching import UnlabeledBatches, worker_processes
from ..data.labeled import bin_scores_of
from ..data.unlabeled import load_unlabeled
from ..hub import public_name
from ..losses import skd_loss
from ..teachers.scorer import ScorerTeacher
from .common import (
    CommonArguments,
    TrainerState,
    make_accelerator,
    parse_arguments,
    teacher_dtype,
)
from .loop import fit_scorer
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

    def __post_init__(self):
        super().__post_init__()
        if not self.dataset or not self.teacher:
            raise ValueError("--dataset and --teacher are required")
        if self.unlabeled and self.mu < 1:
            raise ValueError("--mu must be at least 1 with --unlabeled")


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


def train(args: SKDArguments):
    accelerator = make_accelerator(args)
    set_seed(args.seed)
    train_data, validation_data, validated_on = labeled_splits(args, args.seed)
    bin_scores = bin_scores_of(train_data)
    model, image_processor = scorer_from(args, bin_scores)
    teacher = ScorerTeacher(args.teacher, image_processor, dtype=teacher_dtype(accelerator)).to(accelerator.device)
    if teacher.bin_scores != bin_scores:
        raise ValueError(f"the teacher's bins {teacher.bin_scores} are not the dataset's {bin_scores}")

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
        pixel_values = batch["pixel_values"]
        if batches is not None:
            if not feeds:
                feeds.append(UnlabeledFeed(batches, args.num_workers, args.seed, state))
            unlabeled = feeds[0].next()["pixel_values"]
            if unlabeled is not None:
                pixel_values = torch.cat([pixel_values, unlabeled.to(pixel_values.device)])
        student = model(pixel_values=pixel_values).probabilities
        loss, supervised, distillation = skd_loss(
            student, batch["labels"], teacher(pixel_values), beta=args.beta, r=emd_r
        )
        return loss, {"train/loss_supervised": supervised.item(), "train/loss_distillation": distillation.item()}

    kind = "SKD (CSKD student)" if batches is not None else "supervised KD"
    summary = (
        f"Distilled from the teacher `{public_name(args.teacher)}` on `{public_name(args.dataset)}` "
        f"({len(train_data)} labeled images)"
        + (f" and the unlabeled sources {public_name(args.unlabeled)} (mu={args.mu})" if batches is not None else "")
        + f", beta={args.beta}, from `{public_name(args.model or args.architecture)}`. {validated_on}"
    )
    title = f"CSKD aesthetic scorer ({kind})"
    return fit_scorer(
        accelerator, args, model, image_processor, train_data, validation_data, compute_loss, title, summary, "skd"
    )


ARGUMENTS = SKDArguments


def main(argv=None):
    train(parse_arguments(ARGUMENTS, argv))


__all__ = ["ARGUMENTS", "SKDArguments", "UnlabeledArguments", "main", "train"]
