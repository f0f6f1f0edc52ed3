"""CLIP-based feature alignment (phase I of CSKD, eq. 1): align a timm backbone to a frozen CLIP on unlabeled images.

    accelerate launch scripts/cfa.py --teacher openai/clip-vit-large-patch14 --architecture mobilenetv2_100 \\
        --backbone_pretrained --unlabeled /data/imagenet/train parquet:/data/openimages/*.parquet \\
        --output_dir outputs/cfa-mv2

With several `--teacher`s (CLIP checkpoints and/or `timm:ARCH[@CHECKPOINT]` classifiers), the student gets one
projector per teacher and the alignment losses are summed with `--teacher_weight`s: multi-teacher
CFA, a two-stage variant inspired by Hou et al. (2022), whose own method is the joint mode of
`scripts/finetune.py --alignment_teacher`. One teacher trains exactly as CFA.

The output folder holds a `CSKDForFeatureAlignment` (backbone + projector); `scripts/finetune.py --model` and
`scripts/skd.py --model` start from its aligned backbone with a new scoring head.
"""

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from ..data.batching import UnlabeledBatches
from ..hub import public_name
from ..models.cskd import CSKDForFeatureAlignment, CSKDImageProcessor
from ..teachers.classifier import load_teacher, teacher_embedding_size
from .arguments import BackboneArguments, CommonArguments, UnlabeledArguments, parse_arguments
from .cache import TeacherCache, build_teacher_cache, cache_is_complete
from .common import (
    check_finite,
    check_room_for_checkpoints,
    end_of_epoch,
    end_of_step,
    epoch_progress,
    init_trackers,
    learning_rate_at,
    make_accelerator,
    mean_over_processes,
    reached_max_steps,
    resume,
    save_checkpoint,
    set_learning_rate,
    teacher_dtype,
)
from .loaders import stream_epoch, unlabeled_stream
from .models import RunCard, build_model, export_model

logger = logging.getLogger(__name__)


@dataclass(kw_only=True)
class CFAArguments(CommonArguments, BackboneArguments, UnlabeledArguments):
    teacher: list[str] = field(
        default_factory=list,
        metadata={
            "help": "CLIP checkpoint (Hub id or folder) or timm:ARCH[@CHECKPOINT] classifier; repeat the flag for "
            "several teachers (default: openai/clip-vit-large-patch14)",
            "action": "extend",
        },
    )
    teacher_weight: list[float] = field(
        default_factory=list, metadata={"help": "weight of each teacher's loss (default: 1 each)", "action": "extend"}
    )
    teacher_target: str = field(default="cls", metadata={"help": "cls (the paper) or projected (CLIP's joint space)"})
    teacher_cache: str | None = field(
        default=None,
        metadata={
            "help": "folder of cached teacher embeddings: built on first use, then reused (one subfolder per "
            "teacher when there are several)"
        },
    )
    teacher_caches: list[str] = field(
        default_factory=list,
        metadata={
            "help": "one cache folder per --teacher, in order, instead of --teacher_cache's subfolders (e.g. to reuse "
            "the cache of a one-teacher run for the same teacher)",
            "action": "extend",
        },
    )
    projector_hidden_size: int | None = field(default=None, metadata={"help": "projector width (default: features)"})
    train_augmentation: bool = field(default=True, metadata={"help": "random crop and flip (off: centre crop)"})

    def __post_init__(self):
        super().__post_init__()
        if not self.unlabeled:
            raise ValueError("--unlabeled is required: CFA learns from unlabeled images")
        self.teacher = [self.teacher] if isinstance(self.teacher, str) else list(self.teacher)
        self.teacher = self.teacher or ["openai/clip-vit-large-patch14"]
        if self.teacher_weight and len(self.teacher_weight) != len(self.teacher):
            raise ValueError(f"--teacher_weight: {len(self.teacher_weight)} weights for {len(self.teacher)} teachers")
        if self.teacher_caches and len(self.teacher_caches) != len(self.teacher):
            raise ValueError(f"--teacher_caches: {len(self.teacher_caches)} folders for {len(self.teacher)} teachers")
        if self.teacher_caches and self.teacher_cache:
            raise ValueError("--teacher_cache or --teacher_caches, not both")

    def cache_dir(self, index: int) -> str | None:
        """The teacher cache of teacher `index`: its `--teacher_caches` folder, or `--teacher_cache` itself for a
        single teacher and its `teacher<index>` subfolder for several."""
        if self.teacher_caches:
            return self.teacher_caches[index]
        if not self.teacher_cache or len(self.teacher) == 1:
            return self.teacher_cache
        return os.path.join(self.teacher_cache, f"teacher{index}")


def alignment_model(args: CFAArguments, projection_dim: int | list[int]) -> CSKDForFeatureAlignment:
    """The student of CFA: `--model` as saved (to continue), else a new backbone with one projector per teacher."""
    projector = {"projection_dim": projection_dim, "projector_hidden_size": args.projector_hidden_size}
    return build_model(CSKDForFeatureAlignment, args, {**projector, "alignment_weights": args.teacher_weight or None})


class AlignmentTargets:
    """Eq. 1's `x_clip` for each batch: the frozen teachers' embeddings of the student's view, or with a teacher
    cache their embeddings of the images' centre view, looked up by key (one cache per teacher)."""

    def __init__(self, teachers: list[torch.nn.Module] | None, caches: list[TeacherCache] | None, device):
        self.teachers, self.caches, self.device = teachers, caches, device

    def __call__(self, batch: dict, pixel_values: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if self.caches:
            targets = [cache.lookup(batch["keys"]).to(self.device) for cache in self.caches]
        else:
            targets = [teacher(pixel_values) for teacher in self.teachers]
        return targets[0] if len(targets) == 1 else targets


def alignment_targets(
    args: CFAArguments,
    model: CSKDForFeatureAlignment,
    image_processor: CSKDImageProcessor,
    accelerator: Accelerator,
    stream_batches: Callable[..., UnlabeledBatches],
) -> AlignmentTargets:
    """The live teachers, or with `--teacher_cache(s)` the caches of their embeddings, built first where missing."""
    mean, std, dtype = image_processor.image_mean, image_processor.image_std, teacher_dtype(accelerator)
    teachers = [load_teacher(spec, args.teacher_target, mean, std, dtype) for spec in args.teacher]
    teachers = [teacher.to(accelerator.device) for teacher in teachers]
    if not (args.teacher_cache or args.teacher_caches):
        return AlignmentTargets(teachers, None, accelerator.device)
    descriptions = [
        {"teacher": spec, "target": args.teacher_target, "image_size": model.config.image_size}
        for spec in args.teacher
    ]
    for index, (teacher, description) in enumerate(zip(teachers, descriptions, strict=True)):
        if not cache_is_complete(args.cache_dir(index)):
            batches = stream_batches(train=False, drop_last=False)
            build_teacher_cache(args.cache_dir(index), batches, teacher, accelerator, args.num_workers, description)
    # A cache built for another teacher, target or input size is refused, naming what differs.
    caches = [TeacherCache(args.cache_dir(index), description) for index, description in enumerate(descriptions)]
    folders = ", ".join(args.cache_dir(index) for index in range(len(args.teacher)))
    logger.info(f"training from the teacher caches in {folders} ({len(caches[0])} images)")
    return AlignmentTargets(None, caches, accelerator.device)  # the live teachers' memory is freed


def train(args: CFAArguments) -> dict:
    accelerator = make_accelerator(args)
    set_seed(args.seed)
    model = alignment_model(args, [teacher_embedding_size(spec, args.teacher_target) for spec in args.teacher])
    check_room_for_checkpoints(args.output_dir, model)  # before the teacher cache, which can take hours
    image_processor = CSKDImageProcessor.from_model_config(model.config)

    def stream_batches(train: bool, drop_last: bool, training: bool = False) -> UnlabeledBatches:
        """The stream's batches: normalised for the teacher cache, `uint8` crops (optionally draft-decoded) to
        normalise on the device for training."""
        stream = unlabeled_stream(args, args.seed, accelerator)
        draft, uint8 = training and args.draft_decode, training
        return UnlabeledBatches(stream, image_processor, args.batch_size, train, args.seed, drop_last, draft, uint8)

    targets_of = alignment_targets(args, model, image_processor, accelerator, stream_batches)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    model, optimizer = accelerator.prepare(model, optimizer)
    state = resume(accelerator, args)
    init_trackers(accelerator, "cfa", args)
    batches = stream_batches(train=args.train_augmentation, drop_last=True, training=True)

    model.train()
    for epoch in range(state.epoch, args.num_epochs):
        set_learning_rate(optimizer, learning_rate_at(args, epoch))
        progress = epoch_progress(accelerator, args, epoch)  # a pass over the stream: its length is unknown
        epoch_loss, epoch_batches = 0.0, 0
        for batch in stream_epoch(accelerator, batches, state, epoch, args.num_workers, args.seed):
            pixel_values = image_processor.to_pixel_values(batch["pixel_values"].to(accelerator.device))
            targets = targets_of(batch, pixel_values)  # the frozen teachers' embeddings (eq. 1's x_clip)
            with accelerator.accumulate(model):
                loss = model(pixel_values=pixel_values, teacher_embeds=targets).loss  # 1 - cos(x_clip, proj(x))
                check_finite(accelerator, loss, state)
                accelerator.backward(loss)
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            epoch_loss, epoch_batches = epoch_loss + loss.item(), epoch_batches + 1
            if accelerator.sync_gradients and end_of_step(accelerator, args, state, model, optimizer, progress, loss):
                break
        progress.close()
        epoch_mean = mean_over_processes(accelerator, epoch_loss, epoch_batches)
        end_of_epoch(accelerator, state, epoch, {"train/epoch_loss": epoch_mean})
        if reached_max_steps(args, state):
            break
    save_checkpoint(accelerator, state, model, keep=args.checkpoints_total_limit)

    final = {"alignment_loss": state.history[-1]["train/epoch_loss"]} if state.history else {}
    card = run_card(args, accelerator.unwrap_model(model).config.architecture, cached=targets_of.caches is not None)
    export_model(accelerator, model, image_processor, args.output_dir, card, final)
    accelerator.end_training()
    return {"history": state.history, **final}


def run_card(args: CFAArguments, architecture: str, cached: bool) -> RunCard:
    return RunCard(
        title="CSKD feature-aligned backbone (CFA, phase I)",
        summary=(
            f"`{architecture}` aligned to {' + '.join(f'`{spec}`' for spec in public_name(args.teacher))} "
            f"({args.teacher_target} embedding) on {public_name(args.unlabeled)}"
            + (" from cached teacher embeddings." if cached else ".")
            + " Load it with `CSKDForAestheticScoring.from_pretrained` to train a scorer on its backbone."
        ),
        args=args,
        sources=args.unlabeled,
    )


ARGUMENTS = CFAArguments


def main(argv=None):
    train(parse_arguments(ARGUMENTS, argv))


__all__ = ["ARGUMENTS", "CFAArguments", "main", "train"]
