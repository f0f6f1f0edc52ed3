"""What every trainer shares: arguments, the Accelerator, learning-rate steps, checkpoints, validation."""

import argparse
import dataclasses
import errno
import hashlib
import json
import logging
import math
import os
import re
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field, fields
from datetime import timedelta
from pathlib import Path

import torch
import yaml
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.utils import InitProcessGroupKwargs, ProjectConfiguration
from safetensors import SafetensorError
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import HfArgumentParser

from ..data.batching import LabeledImages, collate_labeled, worker_processes
from ..metrics import aesthetic_metrics

logger = logging.getLogger(__name__)

STATE_FILE = "trainer_state_rank{rank}.json"
# Written last, by the main process, once every process has saved its part: a checkpoint without it is one that a kill
# interrupted, and `latest` passes over it.
COMPLETE_FILE = "checkpoint_complete.json"


@dataclass(kw_only=True)
class CommonArguments:
    """Options of every trainer. The defaults are the CSKD paper's (§4.2)."""

    output_dir: str = field(metadata={"help": "where checkpoints, logs and the final model go"})
    seed: int = field(default=0, metadata={"help": "seed of everything: model init, data order, augmentation"})
    num_epochs: int = field(default=16, metadata={"help": "training epochs"})
    max_train_steps: int | None = field(default=None, metadata={"help": "stop after this many optimizer steps"})
    batch_size: int = field(default=32, metadata={"help": "images per process and step (labeled: B_s for SKD)"})
    learning_rate: float = field(default=1e-4, metadata={"help": "Adam's learning rate"})
    lr_decay_epochs: list[int] = field(default_factory=lambda: [5], metadata={"help": "epochs where lr is decayed"})
    lr_decay_factor: float = field(default=0.1, metadata={"help": "the decay's factor"})
    weight_decay: float = field(default=0.0, metadata={"help": "Adam's L2 weight decay"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "batches per optimizer step"})
    max_grad_norm: float = field(default=0.0, metadata={"help": "clip gradients to this norm (0: no clipping)"})
    mixed_precision: str | None = field(
        default=None, metadata={"help": "no, fp16 or bf16; default: as `accelerate config` says"}
    )
    num_workers: int = field(default=2, metadata={"help": "DataLoader workers decoding images, per process"})
    checkpointing_steps: int = field(default=500, metadata={"help": "save the training state every N steps"})
    checkpoints_total_limit: int = field(default=3, metadata={"help": "keep only the newest N checkpoints"})
    resume_from_checkpoint: str | None = field(
        default=None, metadata={"help": "`latest` or a checkpoint folder to continue from"}
    )
    report_to: str = field(default="tensorboard", metadata={"help": "an Accelerate tracker, or `none`"})
    logging_steps: int = field(default=10, metadata={"help": "log the training loss every N steps"})
    ddp_timeout: int = field(
        default=1800, metadata={"help": "seconds a process waits for the others in a collective before failing"}
    )

    def __post_init__(self):
        if self.batch_size < 1 or self.gradient_accumulation_steps < 1 or self.num_epochs < 1:
            raise ValueError("batch_size, gradient_accumulation_steps and num_epochs must be at least 1")
        if self.checkpointing_steps < 1:
            raise ValueError("checkpointing_steps must be at least 1")
        if self.ddp_timeout < 1:
            raise ValueError("ddp_timeout must be at least 1 second")
        if self.checkpoints_total_limit < 1:
            raise ValueError("checkpoints_total_limit must be at least 1 (the checkpoint a resume starts from)")
        if hasattr(super(), "__post_init__"):  # the other argument groups of a trainer's dataclass check theirs
            super().__post_init__()


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

    def save(self, folder: str | os.PathLike, rank: int) -> None:
        Path(folder, STATE_FILE.format(rank=rank)).write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, folder: str | os.PathLike, rank: int) -> "TrainerState":
        return cls(**json.loads(Path(folder, STATE_FILE.format(rank=rank)).read_text()))


class NonFiniteLossError(RuntimeError):
    pass


def parse_arguments(arguments_class, argv: list[str] | None = None):
    """Flags, or a single YAML / JSON file holding the same options (`HfArgumentParser`).

    A file's values go through the same parser as flags, so a value of the wrong type, an unknown key or a missing
    required one is a `ValueError` naming the file. `null`, an empty list and `true`/`false` for an option that is not
    a flag are set as written, as `HfArgumentParser.parse_yaml_file` does.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) == 1 and argv[0].endswith((".yaml", ".yml", ".json")):
        flags, as_written = options_file_as_flags(argv[0], arguments_class)
        parser = HfArgumentParser(arguments_class, exit_on_error=False)
        try:
            (args,) = parser.parse_args_into_dataclasses(args=flags)
        except argparse.ArgumentError as error:
            raise ValueError(f"{argv[0]}: {error}") from error
        return dataclasses.replace(args, **as_written) if as_written else args
    (args,) = HfArgumentParser(arguments_class).parse_args_into_dataclasses(args=argv)
    return args


def options_file_as_flags(path: str, arguments_class) -> tuple[list[str], dict]:
    """A YAML / JSON file's options as command-line flags, plus the values no flag can carry (see `parse_arguments`).

    Unknown or missing required keys raise a `ValueError` naming them and the file.
    """
    with open(path, encoding="utf-8") as file:
        options = json.load(file) if path.endswith(".json") else yaml.safe_load(file)
    if not isinstance(options, dict):
        raise ValueError(f"{path}: expected a mapping of option names to values, got {type(options).__name__}")
    known = {f.name: f for f in dataclasses.fields(arguments_class)}
    unknown = sorted(str(name) for name in options if name not in known)
    if unknown:
        raise ValueError(f"{path}: unknown option(s) {', '.join(unknown)} for {arguments_class.__name__}")
    required = [name for name, f in known.items() if _is_required(f) and name not in options]
    if required:
        raise ValueError(f"{path}: missing required option(s) {', '.join(required)}")
    flags, as_written = [], {}
    for name, value in options.items():
        is_flag = known[name].type in (bool, "bool")
        if value is None or value == [] or (isinstance(value, bool) and not is_flag):
            as_written[name] = value
            continue
        values = value if isinstance(value, list) else [value]
        if any(isinstance(item, (dict, list)) for item in values):
            raise ValueError(f"{path}: option {name} must be a value or a list of values, got {value!r}")
        if isinstance(value, list):
            flags += [f"--{name}", *map(str, values)]
        else:
            flags.append(f"--{name}={value}")  # one token, so that a negative number is not read as an option
    return flags, as_written


def _is_required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


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


def check_finite(accelerator: Accelerator, loss: torch.Tensor, state: TrainerState, last_checkpoint: str | None):
    """Stop every process with a clear message when any process's loss is NaN or infinite.

    Raised before the backward pass and the optimizer step, so the weights and the last checkpoint stay good.
    """
    if not all_processes(accelerator, bool(torch.isfinite(loss.detach()).all())):
        where = f"the last good checkpoint is {last_checkpoint}" if last_checkpoint else "no checkpoint was saved yet"
        raise NonFiniteLossError(
            f"non-finite loss at step {state.global_step + 1} (epoch {state.epoch}); {where}. "
            "Lower --learning_rate, set --max_grad_norm, or check the data."
        )


def weights_fingerprint(model: torch.nn.Module) -> str:
    """A hash of the parameters, to check that all processes hold the same weights.

    Buffers are left out: DDP broadcasts them from process 0 at each forward pass, so BatchNorm statistics differ
    between processes after a training step until the next one.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.named_parameters()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def optimization_step(accelerator, model, optimizer, loss_of, args, state: TrainerState, last_checkpoint: str | None):
    """One accumulated step: loss, the non-finite check (before anything changes), backward, clipping, update.

    `loss_of()` computes the loss (and may return extra values after it, as a tuple); returns what it returned.
    """
    with accelerator.accumulate(model):
        result = loss_of()
        loss = result[0] if isinstance(result, tuple) else result
        check_finite(accelerator, loss, state, last_checkpoint)
        accelerator.backward(loss)
        if accelerator.sync_gradients and args.max_grad_norm > 0:
            accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad()
    return result


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
        marker = Path(path, COMPLETE_FILE)
        partial = marker.with_suffix(".partial")
        partial.write_text(json.dumps({"global_step": state.global_step, "processes": accelerator.num_processes}))
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


def resume(accelerator: Accelerator, args: CommonArguments) -> tuple[TrainerState, str | None]:
    """Restore Accelerate's state and ours from `args.resume_from_checkpoint`; a fresh state without one.

    `latest` is the newest complete checkpoint. Incomplete ones (a kill while saving) are named in the log and moved
    aside to `incomplete_checkpoint_<n>`, so that the resumed run can write its own `checkpoint_<n>` there.
    """
    if not args.resume_from_checkpoint:
        return TrainerState(), None
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
                folder.rename(folder.with_name(f"incomplete_{folder.name}"))
        accelerator.wait_for_everyone()
        if not complete:
            logger.warning(f"no complete checkpoint in {Path(args.output_dir, 'checkpoints')}: starting from scratch")
            return TrainerState(), None
        path = str(complete[-1])
    elif not is_complete(Path(path)):
        raise ValueError(f"{path} is not a complete checkpoint (no {COMPLETE_FILE}: the run was killed while saving)")
    accelerator.load_state(path)
    # Later checkpoints continue the numbering instead of colliding with the one we resumed from.
    accelerator.project_configuration.iteration = _checkpoint_number(Path(path)) + 1
    state = TrainerState.load(path, accelerator.process_index)
    logger.info(f"resumed from {path} at step {state.global_step}, epoch {state.epoch}")
    return state, path


def _checkpoint_number(path: Path) -> int:
    match = re.search(r"(\d+)$", path.name)
    return int(match.group(1)) if match else -1


def labeled_loader(dataset, image_processor, args: CommonArguments, train: bool, batch_size: int) -> DataLoader:
    images = LabeledImages(dataset, image_processor, train=train, seed=args.seed)
    return DataLoader(
        images,
        batch_size=batch_size,
        shuffle=train,
        drop_last=train,
        collate_fn=collate_labeled,
        **worker_processes(images, args.num_workers),
        # Its own generator: creating an iterator (e.g. after resuming mid-epoch) must not draw from the global RNG,
        # which dropout uses, or a resumed run would diverge from an uninterrupted one.
        generator=torch.Generator().manual_seed(args.seed),
    )


@torch.no_grad()
def evaluate_scorer(model, loader: DataLoader, accelerator: Accelerator, scale: dict[str, float]) -> dict:
    """MSE, SRCC, PLCC, accuracy and IER of a scoring model over a prepared DataLoader, gathered from all processes;
    `scale` holds the scale-dependent parameters (`metrics.metric_scale`)."""
    model.eval()
    predicted, target = [], []
    for batch in tqdm(loader, desc="validation", disable=not accelerator.is_local_main_process, leave=False):
        if batch["pixel_values"] is None:
            continue
        outputs = model(pixel_values=batch["pixel_values"])
        scores, truth = accelerator.gather_for_metrics((outputs.mean_score.float(), batch["mean_scores"]))
        predicted.append(scores.cpu())
        target.append(truth.cpu())
    model.train()
    return aesthetic_metrics(torch.cat(predicted).numpy(), torch.cat(target).numpy(), **scale)


def steps_per_epoch(num_batches: int, args: CommonArguments) -> int:
    return math.ceil(num_batches / args.gradient_accumulation_steps)


__all__ = [
    "CommonArguments",
    "NonFiniteLossError",
    "TrainerState",
    "all_processes",
    "check_finite",
    "evaluate_scorer",
    "init_trackers",
    "labeled_loader",
    "learning_rate_at",
    "make_accelerator",
    "mean_over_processes",
    "optimization_step",
    "parse_arguments",
    "resume",
    "save_checkpoint",
    "set_learning_rate",
    "teacher_dtype",
]
