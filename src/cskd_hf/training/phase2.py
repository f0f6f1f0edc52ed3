"""Phase II's one training loop: supervised fine-tuning (the CSKD teacher, NIMA*), KD, SKD and SKD without labels.

They differ only by what is present: labeled data (the EMD to the human votes, eq. 2), a frozen teacher (the EMD to
its pseudo-labels, weighted by beta: eqs. 3-5), and an unlabeled stream (mu unlabeled images per labeled one, or the
whole batch when there are no labels). `scripts/finetune.py` and `scripts/skd.py` set them up and call `fit`.
"""

import torch
from accelerate import Accelerator
from datasets import Dataset
from tqdm.auto import tqdm

from ..data.batching import UnlabeledBatches
from ..losses import cosine_alignment_loss, earth_movers_distance
from ..models.cskd import CSKDForAestheticScoring, CSKDImageProcessor
from ..teachers.scorer import ScorerTeacher
from .arguments import CommonArguments, DataArguments
from .cache import TeacherCache
from .common import (
    check_finite,
    check_room_for_checkpoints,
    end_of_epoch,
    end_of_step,
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


def fit(
    accelerator: Accelerator,
    args: CommonArguments | DataArguments,
    model: CSKDForAestheticScoring,
    image_processor: CSKDImageProcessor,
    card: RunCard,
    train_data: Dataset | None,
    validation_data: Dataset | None,
    teacher: ScorerTeacher | None = None,
    unlabeled: UnlabeledBatches | None = None,
    cached_targets: TeacherCache | None = None,
    beta: float = 1.0,
    alignment_teachers: list[torch.nn.Module] | None = None,
    projectors: torch.nn.ModuleList | None = None,
    alignment_weight: float = 1.0,
) -> dict:
    """Train `model`, validate it after each epoch (exporting the best to `best/`), export it to `args.output_dir`.

    With `train_data`, an epoch is one pass over it and `unlabeled` (if given) adds a batch of the stream to each
    labeled batch; without, an epoch is one pass over `unlabeled`. `cached_targets` replaces the live teacher's
    outputs on the unlabeled images by those of the teacher cache. `projectors` (one per alignment teacher, trained
    with the student and dropped at the end) map its pooled features to each teacher's. Returns the final validation
    metrics and the history of the epochs.
    """
    alignment_teachers = alignment_teachers or []
    # Parameters taken before `prepare`: DDP wraps the modules but keeps their parameters (not so FSDP).
    parameters = [
        parameter for module in (model, projectors) if module is not None for parameter in module.parameters()
    ]
    optimizer = torch.optim.Adam(parameters, lr=args.learning_rate, weight_decay=args.weight_decay)
    train_loader = validation_loader = None
    if train_data is not None:
        train_loader = labeled_loader(
            train_data, image_processor, args, True, args.batch_size, augment=args.train_augmentation
        )
    if validation_data is not None:
        validation_loader = labeled_loader(validation_data, image_processor, args, False, args.batch_size)
    model, optimizer, train_loader, validation_loader = accelerator.prepare(
        model, optimizer, train_loader, validation_loader
    )
    trained = [model]
    if projectors is not None:
        projectors = accelerator.prepare(projectors)
        trained.append(projectors)
    check_room_for_checkpoints(args.output_dir, model)
    state = resume(accelerator, args)
    distils = teacher is not None or cached_targets is not None
    init_trackers(accelerator, "skd" if distils else "finetune", args)
    unwrapped = accelerator.unwrap_model(model)
    scale, emd_r = args.metric_scale(unwrapped.config.bin_scores), unwrapped.config.emd_r
    feed = None
    if train_data is not None and unlabeled is not None:
        feed = UnlabeledFeed(unlabeled, args.num_workers, args.seed, state)

    total_steps = args.max_train_steps
    if train_loader is not None and not total_steps:
        total_steps = args.num_epochs * (len(train_loader) // args.gradient_accumulation_steps)
    progress = tqdm(
        total=total_steps, initial=state.global_step, desc="training", disable=not accelerator.is_local_main_process
    )
    model.train()
    for epoch in range(state.epoch, args.num_epochs):
        set_learning_rate(optimizer, learning_rate_at(args, epoch))
        if train_loader is not None:
            batches = labeled_epoch(accelerator, train_loader, state, epoch)
        else:
            batches = stream_epoch(accelerator, unlabeled, state, epoch, args.num_workers, args.seed)
        epoch_loss, epoch_batches, epoch_terms = 0.0, 0, {}
        for batch in batches:
            # The batch: the labeled images first (if any), then the unlabeled ones.
            labels = batch.get("labels")
            pixel_values = batch["pixel_values"].to(accelerator.device)
            num_labeled = 0 if labels is None else len(labels)
            unlabeled_keys = batch["keys"] if labels is None else []
            with accelerator.accumulate(*trained):
                if feed is not None:  # SKD: mu * B_s unlabeled images after the B_s labeled ones
                    unlabeled_batch = feed.next()
                    if unlabeled_batch["pixel_values"] is not None:
                        unlabeled_pixels = unlabeled_batch["pixel_values"].to(pixel_values.device)
                        pixel_values = torch.cat([pixel_values, unlabeled_pixels])
                        unlabeled_keys = unlabeled_batch["keys"]
                # The teacher's pseudo-labels, on the student's view of every image, or for the unlabeled images
                # from the teacher cache (their centre view).
                targets = None
                if cached_targets is not None:
                    looked_up = cached_targets.lookup(unlabeled_keys).to(pixel_values.device)
                    targets = torch.cat([teacher(pixel_values[:num_labeled]), looked_up]) if num_labeled else looked_up
                elif teacher is not None:
                    targets = teacher(pixel_values)
                student = model(pixel_values=pixel_values)
                probabilities = student.probabilities
                # The loss terms: EMD to the human votes of the labeled images (eq. 2), beta * EMD to the teacher's
                # pseudo-labels over the whole batch (eqs. 3-5), lambda * the alignment of the student's features to
                # each classifier's (eq. 1's loss, Hou et al.).
                terms, weights = {}, {"supervised": 1.0, "distillation": beta, "alignment": alignment_weight}
                if labels is not None:
                    terms["supervised"] = earth_movers_distance(probabilities[:num_labeled], labels, r=emd_r).mean()
                if targets is not None:
                    terms["distillation"] = earth_movers_distance(probabilities, targets, r=emd_r).mean()
                if alignment_teachers:
                    features = student.pooler_output
                    terms["alignment"] = sum(
                        cosine_alignment_loss(teacher_of(pixel_values).to(features.dtype), projector(features)).mean()
                        for teacher_of, projector in zip(alignment_teachers, projectors, strict=True)
                    )
                loss = sum(weights[name] * term for name, term in terms.items())
                check_finite(accelerator, loss, state)
                accelerator.backward(loss)
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(parameters, args.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            epoch_loss, epoch_batches = epoch_loss + loss.item(), epoch_batches + 1
            values = {name: term.item() for name, term in terms.items()}  # the same terms on every process
            for name, value in values.items():
                epoch_terms[name] = epoch_terms.get(name, 0.0) + value
            if accelerator.sync_gradients:
                logs = {f"train/loss_{name}": value for name, value in values.items()}
                if end_of_step(accelerator, args, state, model, optimizer, progress, loss, logs):
                    break
        # The epoch iterators move `state` to the next epoch once they are read to the end. An epoch of labeled
        # data that `max_train_steps` cut short is neither validated nor summarised (best/ is the best full epoch);
        # a pass over the stream is, as its length is the stream's.
        finished = state.epoch > epoch
        if finished or train_loader is None:
            scalars = {}
            if validation_loader is not None:
                metrics = evaluate_scorer(model, validation_loader, accelerator, scale)
                if state.best_metric is None or metrics["srcc"] > state.best_metric:
                    state.best_metric = metrics["srcc"]
                    export_model(accelerator, model, image_processor, f"{args.output_dir}/best", card, metrics)
                scalars = {f"validation/{name}": value for name, value in metrics.items() if isinstance(value, float)}
            scalars["train/epoch_loss"] = mean_over_processes(accelerator, epoch_loss, epoch_batches)
            for name, total in epoch_terms.items():  # each term unweighted, to see which one moves
                scalars[f"train/epoch_loss_{name}"] = mean_over_processes(accelerator, total, epoch_batches)
            end_of_epoch(accelerator, state, epoch, scalars)
        if reached_max_steps(args, state):
            break
    progress.close()
    save_checkpoint(accelerator, state, model, keep=args.checkpoints_total_limit)

    metrics = evaluate_scorer(model, validation_loader, accelerator, scale) if validation_loader is not None else {}
    export_model(accelerator, model, image_processor, args.output_dir, card, metrics or None)
    accelerator.end_training()
    return {**metrics, "history": state.history}


__all__ = ["fit"]
