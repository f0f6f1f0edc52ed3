"""Phase II's one training loop, for every objective (`objectives.py`): supervised fine-tuning (the CSKD teacher,
NIMA*), KD, SKD, SKD without labels and Hou et al.'s joint mode.

`scripts/finetune.py` and `scripts/skd.py` build the run (`ScorerRun`) and its objective, and call `fit`.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from accelerate import Accelerator
from datasets import Dataset
from torch.utils.data import DataLoader

from ..data.batching import UnlabeledBatches
from ..losses import LossTerms, total_loss
from ..models.cskd import CSKDForAestheticScoring, CSKDImageProcessor
from .arguments import CommonArguments, DataArguments
from .common import (
    TrainerState,
    check_finite,
    check_room_for_checkpoints,
    end_of_epoch,
    end_of_step,
    epoch_progress,
    evaluate_scorer,
    init_trackers,
    learning_rate_at,
    mean_over_processes,
    reached_max_steps,
    resume,
    save_checkpoint,
    set_learning_rate,
)
from .loaders import UnlabeledFeed, labeled_epoch, labeled_loader, stream_epoch
from .models import RunCard, export_model
from .objectives import Objective, StepBatch


@dataclass
class ScorerRun:
    """What a phase II run trains, on which data, and what its model card says."""

    model: CSKDForAestheticScoring
    image_processor: CSKDImageProcessor
    card: RunCard
    train_data: Dataset | None = None
    validation_data: Dataset | None = None
    unlabeled: UnlabeledBatches | None = None


def fit(accelerator: Accelerator, args: CommonArguments | DataArguments, run: ScorerRun, objective: Objective) -> dict:
    """Train `run.model` on `objective`, validate it after each epoch (exporting the best to `best/`), and export it
    to `args.output_dir`. Returns the final validation metrics and the history of the epochs.

    An epoch is one pass over the labeled data, each batch followed by mu * B_s images of the stream when the
    objective uses both; without labels it is one pass over the stream.
    """
    # Parameters taken before `prepare`: DDP wraps the modules but keeps their parameters (not so FSDP).
    parameters = [p for module in (run.model, *objective.trained_modules()) for p in module.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=args.learning_rate, weight_decay=args.weight_decay)
    model, optimizer, train_loader, validation_loader = accelerator.prepare(
        run.model, optimizer, *labeled_loaders(args, run)
    )
    trained = [model, *objective.prepare(accelerator)]
    check_room_for_checkpoints(args.output_dir, model)
    state = resume(accelerator, args)
    init_trackers(accelerator, objective.name, args)
    feed = None
    if objective.uses_labels and objective.uses_unlabeled:
        feed = UnlabeledFeed(run.unlabeled, args.num_workers, args.seed, state)
    model.train()
    for epoch in range(state.epoch, args.num_epochs):
        set_learning_rate(optimizer, learning_rate_at(args, epoch))
        progress = epoch_progress(accelerator, args, epoch, *epoch_steps(args, train_loader, state))
        losses = EpochLosses()
        for batch in epoch_batches(accelerator, args, run, train_loader, state, epoch):
            with accelerator.accumulate(*trained):
                step = step_batch(batch, feed, accelerator.device, run.image_processor)
                terms = objective.loss_terms(step, model(pixel_values=step.pixel_values))
                loss = total_loss(terms)
                check_finite(accelerator, loss, state)
                accelerator.backward(loss)
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(parameters, args.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            logs = {f"train/loss_{name}": value for name, value in losses.add(loss, terms).items()}
            if accelerator.sync_gradients and end_of_step(
                accelerator, args, state, model, optimizer, progress, loss, logs
            ):
                break
        progress.close()
        # The epoch iterators move `state` to the next epoch once read to the end. A labeled epoch that
        # `max_train_steps` cut short is neither validated nor summarised (best/ is the best full epoch); a pass over
        # the stream is, as its length is the stream's.
        if state.epoch > epoch or train_loader is None:
            scalars = validate(accelerator, args, run, model, validation_loader, state)
            end_of_epoch(accelerator, state, epoch, {**scalars, **losses.means(accelerator)})
        if reached_max_steps(args, state):
            break
    save_checkpoint(accelerator, state, model, keep=args.checkpoints_total_limit)
    metrics = validate(accelerator, args, run, model, validation_loader) if validation_loader is not None else {}
    export_model(accelerator, model, run.image_processor, args.output_dir, run.card, metrics or None)
    accelerator.end_training()
    return {**metrics, "history": state.history}


def labeled_loaders(args, run: ScorerRun) -> tuple[DataLoader | None, DataLoader | None]:
    """The training loader (shuffled, augmented unless `--no_train_augmentation`) and the validation loader."""
    train_loader = validation_loader = None
    if run.train_data is not None:
        train_loader = labeled_loader(
            run.train_data, run.image_processor, args, True, args.batch_size, augment=args.train_augmentation
        )
    if run.validation_data is not None:
        validation_loader = labeled_loader(run.validation_data, run.image_processor, args, False, args.batch_size)
    return train_loader, validation_loader


def epoch_steps(args, train_loader: DataLoader | None, state: TrainerState) -> tuple[int | None, int]:
    """The steps of a labeled epoch (unknown for a pass over the stream) and those a resumed run already took."""
    if train_loader is None:
        return None, 0
    accumulation = args.gradient_accumulation_steps
    return len(train_loader) // accumulation, state.batches_in_epoch // accumulation


def epoch_batches(
    accelerator: Accelerator, args, run: ScorerRun, train_loader: DataLoader | None, state: TrainerState, epoch: int
) -> Iterator[dict]:
    """The loader's batches of one epoch: the labeled data's, or without it the stream's."""
    if train_loader is not None:
        return labeled_epoch(accelerator, train_loader, state, epoch)
    return stream_epoch(accelerator, run.unlabeled, state, epoch, args.num_workers, args.seed)


def step_batch(
    batch: dict, feed: UnlabeledFeed | None, device: torch.device, image_processor: CSKDImageProcessor
) -> StepBatch:
    """A step's images: the loader's batch (labeled, or of the stream), then with a feed mu * B_s unlabeled ones. The
    workers hand on `uint8` crops, normalised here on the device."""
    labels = batch.get("labels")
    pixel_values = image_processor.to_pixel_values(batch["pixel_values"].to(device))
    unlabeled_keys = batch["keys"] if labels is None else []
    if feed is not None:
        unlabeled = feed.next()
        if unlabeled["pixel_values"] is not None:
            unlabeled_pixels = image_processor.to_pixel_values(unlabeled["pixel_values"].to(device))
            pixel_values = torch.cat([pixel_values, unlabeled_pixels])
            unlabeled_keys = unlabeled["keys"]
    return StepBatch(pixel_values, labels, unlabeled_keys)


@dataclass
class EpochLosses:
    """Sums over an epoch's batches of the loss and of each term, unweighted (to see which one moves)."""

    total: float = 0.0
    batches: int = 0
    terms: dict[str, float] = field(default_factory=dict)

    def add(self, loss: torch.Tensor, terms: LossTerms) -> dict[str, float]:
        """Add a batch; returns its unweighted terms, the same on every process."""
        self.total, self.batches = self.total + loss.item(), self.batches + 1
        values = {name: term.item() for name, (_, term) in terms.items()}
        for name, value in values.items():
            self.terms[name] = self.terms.get(name, 0.0) + value
        return values

    def means(self, accelerator: Accelerator) -> dict[str, float]:
        """The epoch's mean loss and terms over every process's batches."""
        means = {"train/epoch_loss": mean_over_processes(accelerator, self.total, self.batches)}
        for name, total in self.terms.items():
            means[f"train/epoch_loss_{name}"] = mean_over_processes(accelerator, total, self.batches)
        return means


def validate(
    accelerator: Accelerator,
    args,
    run: ScorerRun,
    model: torch.nn.Module,
    validation_loader: DataLoader | None,
    state: TrainerState | None = None,
) -> dict:
    """The validation metrics; with `state` (after an epoch), the best model so far is exported to `best/` and the
    metrics come back as the epoch's `validation/*` scalars."""
    if validation_loader is None:
        return {}
    metrics = evaluate_scorer(model, validation_loader, accelerator, args.metric_scale(run.model.config.bin_scores))
    if state is None:
        return metrics
    if state.best_metric is None or metrics["srcc"] > state.best_metric:
        state.best_metric = metrics["srcc"]
        export_model(accelerator, model, run.image_processor, f"{args.output_dir}/best", run.card, metrics)
    return {f"validation/{name}": value for name, value in metrics.items() if isinstance(value, float)}


__all__ = ["ScorerRun", "fit"]
