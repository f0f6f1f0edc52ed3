"""The leaves every trainer's loop calls: the Accelerator, learning-rate steps, the non-finite check, the bookkeeping
after each step and epoch, checkpoints and resuming, and the prediction loop that validates and evaluates."""

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field, fields
from datetime import timedelta
from pathlib import Path

import torch
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.utils import InitProcessGroupKwargs, ProjectConfiguration, broadcast_object_list
from safetensors import SafetensorError
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..metrics import aesthetic_metrics
from ..models.fingerprint import weights_fingerprint
from ..models.prediction import predict_mean_scores
from .arguments import CommonArguments

logger = logging.getLogger(__name__)

STATE_FILE = "trainer_state_rank{rank}.json"
# Written last, by the main process, once every process has saved its part: a checkpoint without it is one that a kill
# interrupted, and `latest` passes over it.
COMPLETE_FILE = "checkpoint_complete.json"
# Written just before the mark: every file of the checkpoint with its size and SHA-256, checked before a resume trusts
# it (a file cut short or changed on disk afterwards; Accelerate itself skips an unreadable RNG state with a warning).
MANIFEST_FILE = "manifest.json"


@dataclass
class TrainerState:
    """Where a run is, saved per process next to Accelerate's state so that a resumed run continues exactly."""

    global_step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    stream_epoch: int = 0
    stream_read: int = 0
    skipped_images: int = 0
    best_metric: float | None = None
    history: list[dict] = field(default_factory=list)
    weights_fingerprint: str = ""  # of this process's model at the checkpoint: equal on every process
    last_checkpoint: str | None = None  # of this run (not saved): the one a non-finite loss's message points to

    def save(self, folder: str | os.PathLike, rank: int) -> None:
        saved = {name: value for name, value in asdict(self).items() if name != "last_checkpoint"}
        Path(folder, STATE_FILE.format(rank=rank)).write_text(json.dumps(saved, indent=1))

    @classmethod
    def load(cls, folder: str | os.PathLike, rank: int) -> "TrainerState":
        return cls(**json.loads(Path(folder, STATE_FILE.format(rank=rank)).read_text()))


class NonFiniteLossError(RuntimeError):
    pass


def make_accelerator(args: CommonArguments) -> Accelerator:
    check_writable(args.output_dir)
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=ProjectConfiguration(
            project_dir=args.output_dir,
            logging_dir=os.path.join(args.output_dir, "logs"),
            automatic_checkpoint_naming=True,
            # Not Accelerate's limit: it deletes the oldest checkpoint before writing the next, so a kill during that
            # write could leave none. `save_checkpoint` prunes once the new one is complete.
            total_limit=None,
        ),
        # The shuffling of a prepared DataLoader then depends only on the seed and the epoch: resumable.
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        # A process that hangs, or one on another node that died, fails the others' next collective after this long.
        kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(seconds=args.ddp_timeout))],
    )
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    logging.getLogger("cskd_hf").setLevel(logging.INFO if accelerator.is_main_process else logging.WARNING)
    return accelerator


def check_writable(output_dir: str) -> None:
    """Fail before any work if `output_dir` cannot be created or written (a file in its path, read-only, full)."""
    try:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        descriptor, probe = tempfile.mkstemp(dir=output_dir, prefix=".write_check_")
        try:
            os.write(descriptor, b"\0" * 4096)
        finally:
            os.close(descriptor)
            os.unlink(probe)
    except OSError as error:
        raise OSError(error.errno, f"--output_dir {output_dir} cannot be written: {error.strerror}") from error


def check_room_for_checkpoints(output_dir: str, model: torch.nn.Module) -> None:
    """Fail before training if `output_dir`'s disk cannot hold a checkpoint and the final model."""
    weights = sum(tensor.numel() * tensor.element_size() for tensor in model.state_dict().values())
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    needed = 2 * weights + 2 * trainable  # a checkpoint (weights and Adam's two moments), then the final weights
    free = shutil.disk_usage(output_dir).free
    if free < needed:
        raise OSError(
            errno.ENOSPC,
            f"--output_dir {output_dir} has {free / 2**20:.0f} MiB free; a checkpoint and the final model need "
            f"{needed / 2**20:.0f} MiB",
        )


def init_trackers(accelerator: Accelerator, project_name: str, args) -> None:
    # Trackers take scalars only.
    config = {f.name: _scalar(getattr(args, f.name)) for f in fields(args)}
    accelerator.init_trackers(project_name, config=config)


def _scalar(value):
    return value if isinstance(value, (int, float, str, bool)) else str(value)


def teacher_dtype(accelerator: Accelerator) -> torch.dtype:
    """The dtype a frozen teacher runs in: the mixed-precision dtype, so it costs no more than the student."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(accelerator.mixed_precision, torch.float32)


def learning_rate_at(args: CommonArguments, epoch: int) -> float:
    """The paper's step schedule: `learning_rate` decayed by `lr_decay_factor` at each of `lr_decay_epochs`."""
    return args.learning_rate * args.lr_decay_factor ** sum(epoch >= decay for decay in args.lr_decay_epochs)


def set_learning_rate(optimizer: torch.optim.Optimizer, learning_rate: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = learning_rate


def all_processes(accelerator: Accelerator, flag: bool) -> bool:
    """Whether `flag` holds on every process (e.g. each still has a batch: all must take the same steps)."""
    value = torch.tensor([1.0 if flag else 0.0], device=accelerator.device)
    return bool(accelerator.gather(value).min().item() > 0)


def mean_over_processes(accelerator: Accelerator, total: float, count: int) -> float:
    """The mean of per-process sums: sum(total) / sum(count) over all processes."""
    sums = accelerator.gather(torch.tensor([total, float(count)], device=accelerator.device)).view(-1, 2).sum(0)
    return (sums[0] / sums[1].clamp_min(1)).item()


def check_finite(accelerator: Accelerator, loss: torch.Tensor, state: TrainerState):
    """Stop every process with a clear message when any process's loss is NaN or infinite.

    Called before the backward pass and the optimizer step, so the weights and the last checkpoint stay good.
    """
    if not all_processes(accelerator, bool(torch.isfinite(loss.detach()).all())):
        last = state.last_checkpoint
        where = f"the last good checkpoint is {last}" if last else "no checkpoint was saved yet"
        raise NonFiniteLossError(
            f"non-finite loss at step {state.global_step + 1} (epoch {state.epoch}); {where}. "
            "Lower --learning_rate, set --max_grad_norm, or check the data."
        )


def end_of_step(
    accelerator: Accelerator,
    args: CommonArguments,
    state: TrainerState,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    progress: tqdm,
    loss: torch.Tensor,
    logs: dict | None = None,
) -> bool:
    """The bookkeeping after an optimizer update, the same for every trainer: count it, log the loss (and `logs`)
    every `logging_steps`, checkpoint every `checkpointing_steps`. Returns whether `max_train_steps` is reached."""
    state.global_step += 1
    progress.update(1)
    if state.global_step % args.logging_steps == 0:
        scalars = {"train/loss": loss.item(), **(logs or {}), "train/lr": optimizer.param_groups[0]["lr"]}
        accelerator.log({**scalars, "train/skipped_images": state.skipped_images}, step=state.global_step)
        progress.set_postfix(loss=f"{loss.item():.4f}")
    if state.global_step % args.checkpointing_steps == 0:
        state.last_checkpoint = save_checkpoint(accelerator, state, model, keep=args.checkpoints_total_limit)
    return reached_max_steps(args, state)


def epoch_progress(
    accelerator: Accelerator, args: CommonArguments, epoch: int, total: int | None = None, done: int = 0
) -> tqdm:
    """The progress bar of one epoch's optimizer steps, on the main process only; `end_of_step` shows the loss on it
    and `end_of_epoch` logs the epoch's losses and validation metrics after it."""
    return tqdm(
        total=total,
        initial=done,
        desc=f"training, epoch {epoch + 1}/{args.num_epochs}",
        disable=not accelerator.is_local_main_process,
    )


def reached_max_steps(args: CommonArguments, state: TrainerState) -> bool:
    return bool(args.max_train_steps) and state.global_step >= args.max_train_steps


def end_of_epoch(accelerator: Accelerator, state: TrainerState, epoch: int, scalars: dict) -> None:
    """An epoch's summary (training loss, validation metrics) into the history, the trackers and the log."""
    state.history.append({"epoch": epoch, "step": state.global_step, **scalars})
    accelerator.log(scalars, step=state.global_step)
    logger.info(f"epoch {epoch}: " + ", ".join(f"{k} {v:.4f}" for k, v in scalars.items()))


def save_checkpoint(accelerator: Accelerator, state: TrainerState, model: torch.nn.Module, keep: int) -> str:
    """Save Accelerate's state and ours, mark the checkpoint complete, then keep only the newest `keep` complete ones.

    A process killed anywhere in here leaves either a complete checkpoint or one without its mark, which `resume`
    skips; the previous complete checkpoint is deleted only after the new one is marked.
    """
    try:
        path = accelerator.save_state()
        state.weights_fingerprint = weights_fingerprint(accelerator.unwrap_model(model))
        state.save(path, accelerator.process_index)
    except (OSError, RuntimeError, SafetensorError) as error:
        # A full disk: OSError from our own files, RuntimeError from torch.save, SafetensorError from the weights.
        # This checkpoint stays unmarked and the last complete one is kept.
        folder = Path(accelerator.project_dir, "checkpoints")
        complete = complete_checkpoints(folder)
        last = f"the last complete one is {complete[-1].name}" if complete else "there is no complete one"
        message = f"could not save a checkpoint in {folder} at step {state.global_step} ({error}); {last}"
        raise (OSError(error.errno, message) if isinstance(error, OSError) else OSError(message)) from error
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_manifest(Path(path))
        marker = Path(path, COMPLETE_FILE)
        partial = marker.with_suffix(".partial")
        mark = {"global_step": state.global_step, "processes": accelerator.num_processes, "manifest": MANIFEST_FILE}
        partial.write_text(json.dumps(mark))
        os.replace(partial, marker)  # atomic: the mark is there whole or not at all
        complete = complete_checkpoints(Path(path).parent)
        for folder in complete[: max(len(complete) - keep, 0)]:
            shutil.rmtree(folder)
    accelerator.wait_for_everyone()
    return path


def checkpoint_folders(folder: Path) -> list[Path]:
    """The `checkpoint_<n>` folders under `folder`, oldest first."""
    return sorted(folder.glob("checkpoint_*"), key=_checkpoint_number) if folder.is_dir() else []


def complete_checkpoints(folder: Path) -> list[Path]:
    """The checkpoints under `folder` marked complete, oldest first."""
    return [checkpoint for checkpoint in checkpoint_folders(folder) if is_complete(checkpoint)]


def is_complete(checkpoint: Path) -> bool:
    return (checkpoint / COMPLETE_FILE).is_file()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(checkpoint: Path) -> None:
    """Every file of a checkpoint (all processes' parts) with its size and SHA-256, written whole or not at all."""
    files = {}
    for path in sorted(path for path in checkpoint.rglob("*") if path.is_file()):
        name = path.relative_to(checkpoint).as_posix()
        if name not in (MANIFEST_FILE, COMPLETE_FILE) and not name.endswith(".partial"):
            files[name] = {"size": path.stat().st_size, "sha256": file_sha256(path)}
    partial = checkpoint / f"{MANIFEST_FILE}.partial"
    partial.write_text(json.dumps({"files": files}, indent=1))
    os.replace(partial, checkpoint / MANIFEST_FILE)


def checkpoint_problem(checkpoint: Path) -> str | None:
    """What of a complete checkpoint differs from its manifest, naming the file: missing, of another size, or of
    other bytes. None when every file matches, or for a checkpoint saved before manifests existed (logged)."""
    manifest = checkpoint / MANIFEST_FILE
    if not manifest.is_file():
        if "manifest" in json.loads((checkpoint / COMPLETE_FILE).read_text() or "{}"):
            return f"{manifest} is missing"
        logger.warning(f"{checkpoint} has no {MANIFEST_FILE} (saved before checkpoints were verified): trusting it")
        return None
    try:
        files = {
            name: (int(entry["size"]), str(entry["sha256"]))
            for name, entry in json.loads(manifest.read_text())["files"].items()
        }
    except (ValueError, KeyError, TypeError, AttributeError, OSError) as error:
        return f"{manifest} cannot be read ({error!r})"
    for name, (size, sha256) in files.items():
        path = checkpoint / name
        try:
            if not path.is_file():
                return f"{path} is missing"
            if path.stat().st_size != size:
                return f"{path} has {path.stat().st_size} bytes, the manifest {size}"
            if file_sha256(path) != sha256:
                return f"{path} differs from the manifest (SHA-256)"
        except OSError as error:
            return f"{path} cannot be read ({error})"
    return None


def latest_verified(accelerator: Accelerator, complete: list[Path]) -> str | None:
    """The newest complete checkpoint whose files match its manifest. The main process checks them, newest first,
    and moves each one that fails aside to `corrupt_<name>`; every process gets its choice."""
    chosen, error = None, None
    if accelerator.is_main_process:
        try:
            for folder in reversed(complete):
                problem = checkpoint_problem(folder)
                if problem is None:
                    chosen = str(folder)
                    break
                aside = unused_name(folder, "corrupt_")
                logger.warning(f"skipping {folder.name}: {problem}; moved aside as {aside.name}")
                folder.rename(aside)
        except Exception as failure:  # every process must learn of it, not wait in the broadcast
            error = f"{type(failure).__name__}: {failure}"
    chosen, error = broadcast_object_list([chosen, error])
    if error is not None:
        raise OSError(f"verifying the checkpoints failed on the main process: {error}")
    if chosen is None and complete:
        raise OSError(
            f"none of the {len(complete)} complete checkpoints in {complete[0].parent} matches its {MANIFEST_FILE}: "
            "each is moved aside as corrupt_<name>; resume from one by its path once repaired, or start anew"
        )
    return chosen


def unused_name(folder: Path, prefix: str) -> Path:
    """`<prefix><name>`, or with `_2`, `_3`... if a folder of that name is there already (a checkpoint number can come
    back after a fallback)."""
    candidate, number = folder.with_name(f"{prefix}{folder.name}"), 2
    while candidate.exists():
        candidate, number = folder.with_name(f"{prefix}{folder.name}_{number}"), number + 1
    return candidate


def resume(accelerator: Accelerator, args: CommonArguments) -> TrainerState:
    """Restore Accelerate's state and ours from `args.resume_from_checkpoint`; a fresh state without one.

    `latest` is the newest complete checkpoint whose files match its manifest. Incomplete ones (a kill while saving)
    and corrupt ones (a file cut short or changed since) are named in the log and moved aside to
    `incomplete_checkpoint_<n>` or `corrupt_checkpoint_<n>`, so that the resumed run can write its own
    `checkpoint_<n>` there. A checkpoint named by its path that fails verification is an error naming the file.
    """
    if not args.resume_from_checkpoint:
        return TrainerState()
    path = args.resume_from_checkpoint
    if path == "latest":
        folders = checkpoint_folders(Path(args.output_dir, "checkpoints"))
        complete = [folder for folder in folders if is_complete(folder)]
        incomplete = [folder for folder in folders if not is_complete(folder)]
        if incomplete:
            logger.warning(
                f"skipping {', '.join(folder.name for folder in incomplete)}: not marked complete (a run killed while "
                f"saving); moved aside as incomplete_<name>"
            )
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            for folder in incomplete:
                folder.rename(unused_name(folder, "incomplete_"))
        accelerator.wait_for_everyone()
        path = latest_verified(accelerator, complete)
        if path is None:
            logger.warning(f"no complete checkpoint in {Path(args.output_dir, 'checkpoints')}: starting from scratch")
            return TrainerState()
    elif not is_complete(Path(path)):
        raise ValueError(f"{path} is not a complete checkpoint (no {COMPLETE_FILE}: the run was killed while saving)")
    elif (problem := checkpoint_problem(Path(path))) is not None:
        raise OSError(f"{path} fails verification against its {MANIFEST_FILE}: {problem}")
    accelerator.load_state(path)
    # Later checkpoints continue the numbering instead of colliding with the one we resumed from.
    accelerator.project_configuration.iteration = _checkpoint_number(Path(path)) + 1
    state = TrainerState.load(path, accelerator.process_index)
    state.last_checkpoint = path
    logger.info(f"resumed from {path} at step {state.global_step}, epoch {state.epoch}")
    return state


def _checkpoint_number(path: Path) -> int:
    match = re.search(r"(\d+)$", path.name)
    return int(match.group(1)) if match else -1


@torch.no_grad()
def evaluate_scorer(model, loader: DataLoader, accelerator: Accelerator, scale: dict[str, float]) -> dict:
    """MSE, SRCC, PLCC, accuracy and IER of a scoring model over a prepared loader, gathered from all processes;
    `scale` holds the scale-dependent parameters (`metrics.metric_scale`)."""
    return aesthetic_metrics(*predict_mean_scores(model, loader, accelerator), **scale)


__all__ = [
    "NonFiniteLossError",
    "TrainerState",
    "all_processes",
    "check_finite",
    "check_room_for_checkpoints",
    "checkpoint_problem",
    "end_of_epoch",
    "end_of_step",
    "epoch_progress",
    "evaluate_scorer",
    "init_trackers",
    "learning_rate_at",
    "make_accelerator",
    "mean_over_processes",
    "reached_max_steps",
    "resume",
    "save_checkpoint",
    "set_learning_rate",
    "teacher_dtype",
]
