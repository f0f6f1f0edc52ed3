"""The trainers' options: groups of dataclass fields that each trainer combines, and how they are parsed (flags, or
one YAML / JSON file of the same options, as `HfArgumentParser` reads them)."""

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass, field

import yaml
from transformers import HfArgumentParser

from ..metrics import metric_scale


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
    draft_decode: bool = field(
        default=False,
        metadata={
            "help": "decode large training JPEGs at 1/2, 1/4 or 1/8 of their size where that still covers the resize "
            "(libjpeg's DCT scaling: several times faster on camera-sized photos; pixels within about 2 grey levels "
            "of a full decode's after the resize, so not bit-identical)"
        },
    )
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


TIMM_MODEL_ARGS_HELP = (
    "JSON keyword arguments for timm.create_model, e.g. '{\"drop_path_rate\": 0.1}' (a new backbone only: a saved "
    "--model keeps its own)"
)


def timm_model_args(value: str | dict | None) -> dict:
    """`--model_args` as a dict: the JSON text of the command line, or a dict (or None) given directly."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return dict(value)
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as error:
        raise ValueError(f"--model_args: not JSON ({error}): {value!r}") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"--model_args: a JSON object of keyword arguments, got {value!r}")
    return parsed


@dataclass(kw_only=True)
class BackboneArguments:
    """The model a trainer starts from, in both phases: a saved one, or a new one on a timm backbone."""

    model: str | None = field(
        default=None,
        metadata={"help": "start from this saved model (folder or Hub id): a CFA model, a scorer, or for CFA its own"},
    )
    architecture: str = field(default="mobilenetv2_100", metadata={"help": "timm backbone when --model is not given"})
    backbone_pretrained: bool = field(default=False, metadata={"help": "load timm's ImageNet weights (downloads)"})
    backbone_checkpoint_path: str | None = field(default=None, metadata={"help": "local timm checkpoint file"})
    image_size: int = field(default=224, metadata={"help": "model input size"})
    model_args: str = field(default="{}", metadata={"help": TIMM_MODEL_ARGS_HELP})

    def __post_init__(self):
        # A flag's JSON text or a dataclass user's dict; typed `str` because HfArgumentParser parses one type a flag.
        self.model_args = timm_model_args(self.model_args)
        if hasattr(super(), "__post_init__"):
            super().__post_init__()


@dataclass(kw_only=True)
class ModelArguments(BackboneArguments):
    """Which scoring model to train (shared by fine-tuning and SKD's student)."""

    clip_backbone: str | None = field(
        default=None,
        metadata={
            "help": "instead of a timm backbone, the image tower of this CLIP checkpoint (Hub id or folder), at its "
            "input size: direct CLIP fine-tuning, the baseline CSKD argues against"
        },
    )
    head_hidden_sizes: list[int] = field(default_factory=list, metadata={"help": "hidden sizes of the MLP head"})
    head_dropout: float = field(default=0.75, metadata={"help": "dropout in the head"})


@dataclass(kw_only=True)
class DataArguments:
    dataset: str | None = field(
        default=None,
        metadata={"help": "a prepared dataset folder or Hub id, or ava:ROOT, aadb:ROOT, para:ROOT (original files)"},
    )
    train_split: str = field(default="train", metadata={"help": "split to train on"})
    validation_split: str = field(
        default="validation",
        metadata={"help": "split to validate on and choose best/ by; without it, one is carved from train"},
    )
    validation_size: int = field(
        default=2000,
        metadata={"help": "images carved (seeded) from train when there is no validation split, at most a tenth"},
    )
    ier_threshold: float | None = field(
        default=None, metadata={"help": "validation IER's error t (default: AVA's 0.5, scaled to the bins' range)"}
    )
    ier_interval_width: float | None = field(
        default=None, metadata={"help": "validation IER's interval width (default: AVA's 1, scaled to the range)"}
    )
    train_augmentation: bool = field(default=True, metadata={"help": "random crop and flip (off: centre crop)"})

    def __post_init__(self):
        if self.validation_size < 1:
            raise ValueError(f"--validation_size must be at least 1 image, got {self.validation_size}")
        if hasattr(super(), "__post_init__"):
            super().__post_init__()

    def metric_scale(self, bin_scores: list[float]) -> dict[str, float]:
        """The validation metrics' scale parameters: the dataset's (`metrics.metric_scale`) unless overridden."""
        return metric_scale(bin_scores, self.ier_threshold, self.ier_interval_width)


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


@dataclass(kw_only=True)
class AlignmentArguments:
    """Hou et al. (2022)'s joint mode: beside the aesthetic loss, the student's pooled features are aligned (eq. 1's
    cosine loss, through one projector per teacher, dropped after training) to frozen object classifiers' features on
    the same labeled images, in one stage."""

    alignment_teacher: list[str] = field(
        default_factory=list,
        metadata={
            "help": "timm:ARCH[@CHECKPOINT] object classifier whose features the student aligns to; repeat the flag "
            "for several (Hou et al.'s joint mode; none: plain fine-tuning)",
            "action": "extend",
        },
    )
    alignment_weight: float = field(
        default=1.0, metadata={"help": "lambda: the weight of the alignment losses, summed over the teachers"}
    )

    def __post_init__(self):
        if self.alignment_weight < 0:
            raise ValueError(f"--alignment_weight must be at least 0, got {self.alignment_weight}")
        if hasattr(super(), "__post_init__"):
            super().__post_init__()


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


__all__ = [
    "AlignmentArguments",
    "CommonArguments",
    "DataArguments",
    "ModelArguments",
    "UnlabeledArguments",
    "options_file_as_flags",
    "parse_arguments",
]
