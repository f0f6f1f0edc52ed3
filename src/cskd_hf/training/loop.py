"""The epoch loop over labeled data shared by supervised fine-tuning and SKD, and the export of trained models."""

import logging
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..data.batching import UnlabeledBatches, worker_processes
from ..hub import model_card, save_card
from ..models.cskd import CSKDConfig, CSKDForAestheticScoring, CSKDImageProcessor
from .common import (
    CommonArguments,
    TrainerState,
    all_processes,
    check_room_for_checkpoints,
    evaluate_scorer,
    init_trackers,
    labeled_loader,
    learning_rate_at,
    mean_over_processes,
    optimization_step,
    resume,
    save_checkpoint,
    set_learning_rate,
)

logger = logging.getLogger(__name__)


def build_scorer(
    model_name_or_path: str | None,
    bin_scores: list[float],
    architecture: str,
    image_size: int,
    head_hidden_sizes: list[int],
    head_dropout: float,
    backbone_pretrained: bool = False,
    backbone_checkpoint_path: str | None = None,
    clip_backbone: str | None = None,
) -> CSKDForAestheticScoring:
    """The model phase II starts from: a saved CFA (alignment) or scoring model, a CLIP image tower
    (`clip_backbone`, at CLIP's input size), or a new one from `architecture`.

    From an alignment checkpoint the aligned backbone is kept and the head is new, sized for the dataset's bins.
    """
    head = {"num_bins": len(bin_scores), "bin_scores": bin_scores, "head_hidden_sizes": head_hidden_sizes}
    head["head_dropout"] = head_dropout
    if model_name_or_path:
        return CSKDForAestheticScoring.from_pretrained(model_name_or_path, ignore_mismatched_sizes=True, **head)
    if clip_backbone:
        return CSKDForAestheticScoring.from_config(CSKDConfig.for_clip(clip_backbone, **head))
    config = CSKDConfig(
        architecture=architecture,
        image_size=image_size,
        backbone_pretrained=backbone_pretrained,
        backbone_checkpoint_path=backbone_checkpoint_path,
        **head,
    )
    return CSKDForAestheticScoring.from_config(config)


def export_model(
    accelerator: Accelerator,
    model: torch.nn.Module,
    image_processor: CSKDImageProcessor,
    out_dir: str | Path,
    title: str,
    summary: str,
    args,
    metrics: dict | None = None,
) -> None:
    """`save_pretrained` the unwrapped model with its image processor and a model card, from the main process.

    The card's results are the validation metrics of the run (`metrics`); `cskd evaluate` adds test results.
    """
    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(model)
    unwrapped.save_pretrained(out_dir, is_main_process=accelerator.is_main_process, save_function=accelerator.save)
    if accelerator.is_main_process:
        image_processor.save_pretrained(out_dir)
        hyperparameters = {k: v for k, v in asdict(args).items() if k not in ("output_dir", "resume_from_checkpoint")}
        data = [str(getattr(args, "dataset", None) or ""), *map(str, getattr(args, "unlabeled", []))]
        card = model_card(
            unwrapped.config,
            title,
            summary,
            hyperparameters,
            metrics,
            dataset_name=getattr(args, "dataset", None),
            split=getattr(args, "validation_split", "validation"),
            synthetic=any("synthava" in source.lower() for source in data),
        )
        save_card(card, out_dir)
    accelerator.wait_for_everyone()


def train_on_labeled(
    accelerator: Accelerator,
    args: CommonArguments,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader: DataLoader,
    validation_loader: DataLoader | None,
    state: TrainerState,
    last_checkpoint: str | None,
    compute_loss: Callable[[dict, TrainerState], tuple[torch.Tensor, dict]],
    scale: dict[str, float],
    export_best: Callable[[dict], None],
) -> TrainerState:
    """Epochs over the labeled loader: one optimizer step per `gradient_accumulation_steps` batches.

    `compute_loss(batch, state)` returns the loss and values to log; it may advance the state (SKD's stream).
    Validation runs after each epoch; `export_best(metrics)` is called when SRCC improves.
    """
    total_steps = args.max_train_steps or args.num_epochs * (len(train_loader) // args.gradient_accumulation_steps)
    progress = tqdm(
        total=total_steps, initial=state.global_step, desc="training", disable=not accelerator.is_local_main_process
    )
    model.train()
    for epoch in range(state.epoch, args.num_epochs):
        state.epoch = epoch
        set_learning_rate(optimizer, learning_rate_at(args, epoch))
        train_loader.set_epoch(epoch)
        train_loader.dataset.set_epoch(epoch)
        epoch_loss, epoch_batches = 0.0, 0
        batches = train_loader
        if state.batches_in_epoch:
            batches = accelerator.skip_first_batches(train_loader, state.batches_in_epoch)
        for batch in batches:
            state.batches_in_epoch += 1
            state.skipped_images += int(batch["num_skipped"])
            # Every process must take the same steps: a batch with no readable image is skipped by all.
            if not all_processes(accelerator, batch["pixel_values"] is not None):
                continue
            loss, logs = optimization_step(
                accelerator,
                model,
                optimizer,
                lambda: compute_loss(batch, state),  # noqa: B023 (called now)
                args,
                state,
                last_checkpoint,
            )
            epoch_loss, epoch_batches = epoch_loss + loss.item(), epoch_batches + 1
            if accelerator.sync_gradients:
                state.global_step += 1
                progress.update(1)
                if state.global_step % args.logging_steps == 0:
                    logs = {"train/loss": loss.item(), **logs, "train/lr": optimizer.param_groups[0]["lr"]}
                    logs["train/skipped_images"] = state.skipped_images
                    accelerator.log(logs, step=state.global_step)
                    progress.set_postfix(loss=f"{loss.item():.4f}")
                if state.global_step % args.checkpointing_steps == 0:
                    last_checkpoint = save_checkpoint(accelerator, state, model, keep=args.checkpoints_total_limit)
                if args.max_train_steps and state.global_step >= args.max_train_steps:
                    break
        else:
            state.epoch, state.batches_in_epoch = epoch + 1, 0
        finished_epoch = state.batches_in_epoch == 0
        if finished_epoch and validation_loader is not None:
            scalars = validate(model, validation_loader, accelerator, scale, state, export_best)
            scalars["train/epoch_loss"] = mean_over_processes(accelerator, epoch_loss, epoch_batches)
            accelerator.log(scalars, step=state.global_step)
            state.history.append({"epoch": epoch, "step": state.global_step, **scalars})
            logger.info(f"epoch {epoch}: " + ", ".join(f"{k} {v:.4f}" for k, v in scalars.items()))
        if args.max_train_steps and state.global_step >= args.max_train_steps:
            break
    progress.close()
    save_checkpoint(accelerator, state, model, keep=args.checkpoints_total_limit)
    return state


def validate(
    model: torch.nn.Module,
    loader: DataLoader,
    accelerator: Accelerator,
    scale: dict[str, float],
    state: TrainerState,
    export_best: Callable[[dict], None],
) -> dict:
    """An epoch's validation: the metrics as `validation/<name>` scalars, and `export_best(metrics)` when SRCC beats
    the best so far (kept in `state`, so a resumed run knows it)."""
    metrics = evaluate_scorer(model, loader, accelerator, scale)
    if state.best_metric is None or metrics["srcc"] > state.best_metric:
        state.best_metric = metrics["srcc"]
        export_best(metrics)
    return {f"validation/{name}": value for name, value in metrics.items() if isinstance(value, float)}


# Per step, what all processes agree on before training on a batch of the stream.
EXHAUSTED, EMPTY, READY = 0, 1, 2


def train_on_stream(
    accelerator: Accelerator,
    args: CommonArguments,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: UnlabeledBatches,
    state: TrainerState,
    last_checkpoint: str | None,
    loss_for: Callable[[dict, torch.Tensor], Callable[[], torch.Tensor]],
    description: str,
    end_of_epoch: Callable[[int], dict] | None = None,
) -> TrainerState:
    """Epochs over an unlabeled stream (CFA; SKD without labels): an epoch is one pass over this process's part.

    `loss_for(batch, pixel_values)` runs the frozen teachers and returns the student's loss as a function, which the
    step calls. `end_of_epoch(epoch)` (validation) returns values for the history.
    """
    progress = tqdm(desc=description, initial=state.global_step, disable=not accelerator.is_local_main_process)
    model.train()
    for epoch in range(state.epoch, args.num_epochs):
        state.epoch = epoch
        set_learning_rate(optimizer, learning_rate_at(args, epoch))
        batches.resume_from(epoch, state.stream_read)
        generator = torch.Generator().manual_seed(args.seed)  # keeps iterator creation off the global RNG
        iterator = iter(
            DataLoader(batches, batch_size=None, generator=generator, **worker_processes(batches, args.num_workers))
        )
        epoch_loss, epoch_batches = 0.0, 0
        while True:
            batch = next(iterator, None)
            status = EXHAUSTED if batch is None else (EMPTY if batch["pixel_values"] is None else READY)
            # The first process to run out of images ends the epoch for all: they must take the same steps.
            agreed = accelerator.gather(torch.tensor([status], device=accelerator.device)).min().item()
            if agreed == EXHAUSTED:
                break
            state.stream_read += batch["num_read"]
            state.skipped_images += batch["num_skipped"]
            if agreed == EMPTY:
                continue
            pixel_values = batch["pixel_values"].to(accelerator.device)
            loss_of = loss_for(batch, pixel_values)
            loss = optimization_step(accelerator, model, optimizer, loss_of, args, state, last_checkpoint)
            epoch_loss, epoch_batches = epoch_loss + loss.item(), epoch_batches + 1
            if accelerator.sync_gradients:
                state.global_step += 1
                progress.update(1)
                if state.global_step % args.logging_steps == 0:
                    accelerator.log(
                        {"train/loss": loss.item(), "train/skipped_images": state.skipped_images},
                        step=state.global_step,
                    )
                    progress.set_postfix(loss=f"{loss.item():.4f}")
                if state.global_step % args.checkpointing_steps == 0:
                    last_checkpoint = save_checkpoint(accelerator, state, model, keep=args.checkpoints_total_limit)
                if args.max_train_steps and state.global_step >= args.max_train_steps:
                    break
        scalars = {"train/epoch_loss": mean_over_processes(accelerator, epoch_loss, epoch_batches)}
        if end_of_epoch is not None:
            scalars |= end_of_epoch(epoch)
        state.history.append({"epoch": epoch, "step": state.global_step, **scalars})
        accelerator.log(scalars, step=state.global_step)
        logger.info(f"epoch {epoch}: " + ", ".join(f"{k} {v:.4f}" for k, v in scalars.items()))
        if args.max_train_steps and state.global_step >= args.max_train_steps:
            break
        state.epoch, state.stream_read = epoch + 1, 0
    progress.close()
    save_checkpoint(accelerator, state, model, keep=args.checkpoints_total_limit)
    return state


def fit_scorer(
    accelerator: Accelerator,
    args: CommonArguments,
    model: CSKDForAestheticScoring,
    image_processor: CSKDImageProcessor,
    train_data,
    validation_data,
    compute_loss: Callable[[torch.nn.Module, dict, TrainerState], tuple[torch.Tensor, dict]],
    title: str,
    summary: str,
    project_name: str,
) -> dict:
    """A whole phase II run: prepare, resume, train with validation each epoch, export the best and the final model.

    `compute_loss(prepared_model, batch, state)` is what fine-tuning and SKD differ in. Returns the final validation
    metrics.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    augment = getattr(args, "train_augmentation", True)
    train_loader = labeled_loader(train_data, image_processor, args, train=augment, batch_size=args.batch_size)
    validation_loader = labeled_loader(validation_data, image_processor, args, train=False, batch_size=args.batch_size)
    model, optimizer, train_loader, validation_loader = accelerator.prepare(
        model, optimizer, train_loader, validation_loader
    )
    check_room_for_checkpoints(args.output_dir, model)
    state, last_checkpoint = resume(accelerator, args)
    init_trackers(accelerator, project_name, args)
    scale = args.metric_scale(accelerator.unwrap_model(model).config.bin_scores)

    def export_best(metrics):
        export_model(accelerator, model, image_processor, f"{args.output_dir}/best", title, summary, args, metrics)

    train_on_labeled(
        accelerator,
        args,
        model,
        optimizer,
        train_loader,
        validation_loader,
        state,
        last_checkpoint,
        lambda batch, state: compute_loss(model, batch, state),
        scale,
        export_best,
    )
    metrics = evaluate_scorer(model, validation_loader, accelerator, scale)
    export_model(accelerator, model, image_processor, args.output_dir, title, summary, args, metrics)
    accelerator.end_training()
    return metrics


__all__ = ["build_scorer", "export_model", "fit_scorer", "train_on_labeled", "train_on_stream", "validate"]
