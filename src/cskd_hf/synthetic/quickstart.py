"""`cskd quickstart`: the whole CSKD method, and its baselines, on SynthAVA with tiny stand-in models, on a CPU.

Every stage runs through the project's own code, the same that real runs use: SynthAVA replaces AVA and the unlabeled
corpus, a tiny CLIP pretrained on SynthAVA's captions replaces OpenAI's CLIP (loaded through the same `--teacher`
path), and timm backbones pretrained on SynthAVA's content classes replace ImageNet weights (loaded through the same
`backbone_checkpoint_path`). The trainers are called in process, with the argument dataclasses their command lines
parse into; `trainer_arguments` lists them without running anything.

The stages, in order: the world (SynthAVA), the stand-ins (tiny CLIP, content pretraining), the method (CFA,
fine-tuning, KD, SKD), with `--full` the variants (CFA from the teacher cache, SKD with the live teacher, the ViT of
the Fig. 3 diagnostic), the seed papers' baselines (the premise rows; with `--full` multi-teacher CFA and Hou et al.),
the evaluation and the report.

SynthAVA is synthetic: these numbers say nothing about real photographs.
"""

import functools
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TextIO

import datasets.config
import torch
from accelerate.state import AcceleratorState, GradientState
from datasets import Dataset, DatasetDict

from ..analysis import PAPER_FIG3_DIRECTIONS, analyze_models, attention_change
from ..baselines.linear_probe import fit_linear_probe
from ..baselines.zero_shot import evaluate_zero_shot
from ..data.labeled import bin_scores_of
from ..data.prepare import load_labeled
from ..evaluation import comparison_table, evaluate_model, plot_interval_error_rates
from ..models.cskd import CSKDConfig, CSKDForAestheticScoring, CSKDImageProcessor, CSKDModel
from ..models.cskd.modeling_cskd import timm_model_kwargs
from ..training import cfa, skd, supervised
from .console import StageReporter, console_and_log, duration
from .content_pretraining import pretrain_content_classifier
from .synthava import (
    CONTENT_CLASSES,
    ZERO_SHOT_PROMPTS,
    generate,
    unlabeled_source,
    vote_statistics,
    write_synthava,
)
from .tiny_clip import retrieval_recall, train_tiny_clip

logger = logging.getLogger(__name__)


@dataclass
class QuickstartPlan:
    """Sizes and epochs of each stage, and whether the run has `--full`'s rows; what each stage took on 2 idle cores
    is in `STAGE_SECONDS`."""

    splits: dict[str, int]
    image_size: int = 64
    # MobileNetV2 learns too slowly from scratch at 64 px for a CPU budget; a ResNet-10 teacher and timm's 0.4M
    # parameter test ResNet student keep the paper's large-teacher / small-student shape.
    teacher_architecture: str = "resnet10t"
    student_architecture: str = "test_resnet"
    content_images: int = 5_000
    clip_epochs: int = 3
    clip_batch_size: int = 64
    content_epochs: int = 4
    cfa_epochs: int = 2
    finetune_epochs: int = 4
    student_epochs: int = 4
    # The epoch of the learning rate's decay; a row of fewer epochs decays before its last one.
    lr_decay_epoch: int = 3
    batch_size: int = 32
    # The paper's mu and beta. SKD reads the teacher's distributions of the unlabeled images from its cache (the
    # Training docs' "SKD teacher cache" variant), so mu = 15 costs the student's passes only.
    mu: int = 15
    beta: float = 15.0
    learning_rate: float = 1e-3
    # A fine-tuned row's own learning rate, by model folder (`nima-teacher`, `clip-finetuned`, ...), chosen once from
    # one grid on the validation split (#26, fair tuning); the rows not listed, and CFA, use `learning_rate`.
    row_learning_rates: dict[str, float] = field(default_factory=dict)
    head_dropout: float = 0.2
    # CSKD's teacher and student are "backbone + MLP head" (§3.2), which gives no size. Every fine-tuned row has it,
    # NIMA* and the baselines included: Table 1 compares "under the same model structure ... the only difference is
    # the pre-trained weights" (#26). Only the probes are linear, which is what makes them probes.
    head_hidden_size: int = 128
    # Fig. 3 looks at ViT-Tiny before and after CFA: timm's test ViT (6 layers, width 64) with 8 px patches for an 8x8
    # grid at 64 px (ViT-Tiny has 14x14 at 224) and 4 heads (ViT-Tiny has 3), whose spread the paper reads.
    vit_architecture: str = "test_vit"
    vit_model_args: dict = field(default_factory=lambda: {"patch_size": 8, "num_heads": 4})
    num_workers: int = 2
    # The torch threads of every run, whatever the machine's cores: a seed's numbers depend on the thread count (the
    # seeds report measured differences of up to 0.05 between one and two threads), so not on where it ran.
    torch_threads: int = 2
    # `cskd quickstart --full`: beside the paper's rows and the premise rows, the remaining baselines (multi-teacher
    # CFA, Hou et al.), the recipe's variants (CFA from cached targets, SKD with the live teacher) and Fig. 3's ViT.
    full: bool = False
    extra: dict = field(default_factory=dict)

    def architectures(self) -> dict[str, str]:
        """The timm architecture of each role."""
        return {"teacher": self.teacher_architecture, "student": self.student_architecture}


# A CI-sized check of the code (at most 3 minutes alone here; every stage with `--full`), too small to compare rows.
SMOKE = QuickstartPlan(
    splits={"unlabeled": 1_500, "train": 400, "validation": 200, "test": 400},
    content_images=1_000,
    clip_epochs=2,
    content_epochs=2,
    cfa_epochs=1,
    finetune_epochs=3,
    student_epochs=3,
    lr_decay_epoch=2,
    num_workers=0,
)
# `cskd quickstart`: the smallest plan found that meets the seed papers' premises (#26, docs/calibration.md). Labels
# are scarce (P3: 10x as many unlabeled images as labeled train images); the fine-tuned CLIP beats its linear probe
# (P2) only from about 2,000 labels and 16 epochs (1,000 labels: -0.035 to -0.049; 2,000 at 10 epochs: -0.009 to
# +0.004); the tiny CLIP in batches of 32 (more steps: its probe +0.017 in SRCC).
DEFAULT = QuickstartPlan(
    splits={"unlabeled": 20_000, "train": 2_000, "validation": 500, "test": 1_000},
    content_images=3_000,
    content_epochs=3,
    cfa_epochs=1,
    clip_batch_size=32,
    finetune_epochs=16,
    lr_decay_epoch=13,
    # Chosen on the validation split of seed 0 from {3e-4, 1e-3} (`python benchmarks/learning_rates.py --seed 0
    # --learning-rates 3e-4 1e-3`; docs/calibration.md).
    row_learning_rates={
        "nima-teacher": 0.001,
        "cfa-teacher-scorer": 0.0003,
        "nima-student": 0.0003,
        "cfa-student-scorer": 0.001,
        "kd-student": 0.001,
        "cskd-student": 0.001,
        "clip-finetuned": 0.0003,
        "multi-teacher-cfa-student-scorer": 0.001,
        "hou-joint-student": 0.001,
    },
)
# `cskd quickstart --full` (`make reproduce`): the default world and rows, and the rest.
FULL = replace(DEFAULT, full=True)
PLANS = {"default": DEFAULT, "full": FULL, "smoke": SMOKE}

# What each stage took alone on 2 idle cores, in seconds, at the default and the smoke plan's sizes: the console's
# estimate of the time left scales them by how this machine compares. Default: seed 0 of the default plan (22 min 29 s
# under `/usr/bin/time`); smoke: seed 0 of `--smoke --full` (the slow tests' run).
# `--full`'s other stages at the default sizes are estimated from their smoke times (`expected_stage_seconds`).
STAGE_SECONDS = {
    "default": {
        "SynthAVA": 25,
        "tiny CLIP": 117,
        "content pretraining (teacher: resnet10t)": 55,
        "content pretraining (student: test_resnet)": 27,
        "CFA (teacher)": 121,
        "CFA (student)": 55,
        "nima-teacher": 201,
        "cfa-teacher-scorer": 205,
        "nima-student": 26,
        "cfa-student-scorer": 26,
        "kd-student": 37,
        "cskd-student": 317,
        "CLIP zero-shot": 2,
        "CLIP linear probe": 5,
        "content-pretrained linear probe": 7,
        "clip-finetuned": 94,
        "evaluation on the test split": 18,
        # `--full`'s stages, from the learning-rate grid's run at the default sizes (docs/calibration.md)
        "CFA (student, cached targets)": 97,
        "CFA (student, two teachers)": 120,
        "multi-teacher-cfa-student-scorer": 30,
        "hou-joint-student": 40,
    },
    "smoke": {
        "SynthAVA": 3,
        "tiny CLIP": 5,
        "content pretraining (teacher: resnet10t)": 11,
        "content pretraining (student: test_resnet)": 6,
        "content pretraining (Fig. 3 ViT: test_vit)": 6,
        "CFA (teacher)": 9,
        "CFA (student)": 4,
        "nima-teacher": 9,
        "cfa-teacher-scorer": 8,
        "nima-student": 4,
        "cfa-student-scorer": 4,
        "kd-student": 6,
        "cskd-student": 43,
        "CFA (student, cached targets)": 6,
        "cfa-student-cached-scorer": 4,
        "cskd-student-live": 61,
        "CFA (ViT)": 5,
        "CLIP zero-shot": 1,
        "CLIP linear probe": 1,
        "content-pretrained linear probe": 2,
        "clip-finetuned": 4,
        "CFA (student, two teachers)": 8,
        "multi-teacher-cfa-student-scorer": 4,
        "hou-joint-student": 6,
        "attention diagnostic": 1,
        "evaluation on the test split": 10,
    },
}

# The rows of the paper's Tables 1 and 6, in order: (row name, model folder under models/).
ROWS = [
    ("NIMA* teacher", "nima-teacher"),
    ("NIMA* student", "nima-student"),
    ("CFA teacher", "cfa-teacher-scorer"),
    ("CFA student", "cfa-student-scorer"),
    ("KD student", "kd-student"),
    ("CSKD student (SKD)", "cskd-student"),
]
# The seed papers' premise rows (#26), in every quickstart: Hentschel et al.'s CLIP linear probe, the same probe on
# the content-pretrained ("ImageNet") teacher backbone's frozen features (P1), and the CLIP fine-tuned directly (P2).
PREMISE_ROWS = [
    ("CLIP linear probe", "clip-probe"),
    ("Content-pretrained linear probe", "content-probe"),
    ("CLIP fine-tuned", "clip-finetuned"),
]
# `--full`'s other baselines: multi-teacher CFA and Hou et al. (2022)'s joint student.
FULL_BASELINE_ROWS = [
    ("Multi-teacher CFA student", "multi-teacher-cfa-student-scorer"),
    ("Hou et al. joint student", "hou-joint-student"),
]
BASELINE_ROWS = PREMISE_ROWS + FULL_BASELINE_ROWS
# `--full`'s measurements of the recipe's choices, each against its row of the paper: CFA from the teacher cache
# (centre-crop targets, augmented student) against the live teacher's "CFA student" (the paper's recipe), and SKD with
# the live teacher on the student's augmented view of the unlabeled images (the paper's eq. 5) against the CSKD row's
# cached centre view.
VARIANT_ROWS = [
    ("CFA student, cached CLIP targets", "cfa-student-cached-scorer"),
    ("CSKD student, live teacher", "cskd-student-live"),
]
# A variant measures one choice of the recipe against its row (variant folder: the row's), so it trains as that row
# does, learning rate included.
VARIANT_OF = {"cfa-student-cached-scorer": "cfa-student-scorer", "cskd-student-live": "cskd-student"}
ZERO_SHOT_ROW = "CLIP zero-shot"
# The model folders of the rows that are fitted in closed form rather than trained (no learning rate).
PROBES = {"clip-probe", "content-probe"}


def tuned_rows() -> list[str]:
    """The model folders of the fine-tuned rows that take a learning rate of their own from the grid: every trained
    row but the variants (which take their row's)."""
    rows = ROWS + VARIANT_ROWS + BASELINE_ROWS
    return [folder for _, folder in rows if folder not in PROBES and folder not in VARIANT_OF]


def plan_rows(plan: "QuickstartPlan") -> list[tuple[str, str]]:
    """The rows with a model folder that a run of `plan` reports, in the report's order: the paper's and the premise
    rows, and with `full` the variants and the other baselines."""
    if plan.full:
        return ROWS + VARIANT_ROWS + PREMISE_ROWS + FULL_BASELINE_ROWS
    return ROWS + PREMISE_ROWS


# The two ViTs of the Fig. 3 diagnostic, as `results.json` names them under "attention".
VIT_BEFORE_CFA, VIT_AFTER_CFA = "ViT before CFA", "ViT after CFA"
# The role of the Fig. 3 diagnostic's ViT among the content-pretrained backbones.
FIG3_VIT = "Fig. 3 ViT"
# The stage of the student's CFA on both teachers, whose tiny-CLIP targets are those the cached-target variant cached.
MULTI_TEACHER_CFA = "CFA (student, two teachers)"

TrainerArguments = cfa.CFAArguments | supervised.FinetuneArguments | skd.SKDArguments
TRAINERS: dict[type, Callable[[TrainerArguments], dict]] = {
    cfa.CFAArguments: cfa.train,
    supervised.FinetuneArguments: supervised.train,
    skd.SKDArguments: skd.train,
}


@dataclass(frozen=True)
class Layout:
    """Where everything of a quickstart goes under `out_dir`."""

    out_dir: Path

    @property
    def data_dir(self) -> Path:
        return self.out_dir / "synthava"

    @property
    def models(self) -> Path:
        return self.out_dir / "models"

    @property
    def clip(self) -> Path:
        return self.models / "tiny-clip"

    @property
    def unlabeled(self) -> str:
        return unlabeled_source(self.data_dir)

    @property
    def vit_before_cfa(self) -> Path:
        """The content-pretrained ViT as a model folder: the "before" of the Fig. 3 diagnostic."""
        return self.models / "content-pretrained-vit"

    def content_checkpoint(self, architecture: str) -> Path:
        """The content-pretrained backbone of `architecture`: this world's ImageNet weights."""
        return self.models / f"content-pretrained-{architecture}.safetensors"

    def cache(self, name: str) -> Path:
        return self.out_dir / "cache" / name


@dataclass
class World:
    dataset: DatasetDict
    vote_statistics: dict


@dataclass
class StandIns:
    retrieval: dict
    content_accuracy: dict[str, float]


@dataclass
class Evaluation:
    results: dict[str, dict]
    attention: dict


# Stages whose result the report needs and that take seconds: run again even where an earlier run finished them.
ALWAYS_RUN = {"CLIP zero-shot", "attention diagnostic", "evaluation on the test split"}


@dataclass
class StageRecord:
    """The stages a run finished in its folder (`stages.json`), with their times and JSON results, for a later run of
    the same seed and plan (`--full` aside) in that folder to keep (`--reuse`): the default run before `--full`, or
    a run that was stopped. What a kept stage made (models, caches, data) must still be in the folder."""

    path: Path
    key: dict
    finished: dict[str, dict] = field(default_factory=dict)
    environment: dict | None = None  # of the run that records (`run_environment`), kept with each of its stages

    @classmethod
    def start(cls, path: Path, key: dict, reuse: bool, environment: dict | None = None) -> "StageRecord":
        """A record for a run of `key` (seed and plan) in `path`'s folder: with `reuse`, the stages it already holds
        for the same key (or, from a finished run of a version without `stages.json`, every stage its `results.json`
        timed); otherwise, or with neither there, an empty one."""
        finished, results = {}, path.with_name("results.json")
        if reuse and path.exists():
            saved = json.loads(path.read_text())
            check_same_run(path, saved["key"], key)
            finished = saved["finished"]
        elif reuse and results.exists():
            finished = finished_stages(results, key)
        record = cls(path, key, finished, environment)
        record.save()
        return record

    def keeps(self, name: str) -> bool:
        """Whether a run with this record keeps stage `name` rather than running it."""
        return name in self.finished and name not in ALWAYS_RUN

    def add(self, name: str, seconds: float, result) -> None:
        try:
            json.dumps(result)
        except TypeError:
            result = None  # a dataset, say: the stage's caller reads what it made from the folder
        self.finished[name] = {"seconds": seconds, "result": result, "environment": self.environment}
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps({"key": self.key, "finished": self.finished}, indent=1))
        os.replace(partial, self.path)  # a kill while saving leaves the previous record whole


def run_key(plan: QuickstartPlan, seed: int) -> dict:
    """What a run's stages depend on, for another run to keep them: its seed and plan, `full` aside (the stages the
    two plans share are the same)."""
    return {"seed": seed, "plan": asdict(replace(plan, full=False))}


def check_same_run(path: Path, saved: dict, key: dict) -> None:
    """Refuse to keep the stages recorded in `path` for the run `saved` (seed and plan) in a run of `key`."""
    if saved != key:
        differing = [name for name in key["plan"] if saved["plan"].get(name) != key["plan"][name]]
        differing += sorted(saved["plan"].keys() - key["plan"].keys())  # fields this version's plans no longer have
        differing += ["seed"] if saved["seed"] != key["seed"] else []
        raise ValueError(
            f"--reuse: the stages in {path} are of another run (it differs in {', '.join(differing)}); run without "
            "--reuse, or give another --out"
        )


def finished_stages(results_path: Path, key: dict) -> dict[str, dict]:
    """The stages of the finished run whose `results.json` is `results_path`, as `StageRecord` keeps them: each
    stage it timed, with the content pretraining's accuracy (read from the report) as that stage's result."""
    results = json.loads(results_path.read_text())
    check_same_run(results_path, {"seed": results["seed"], "plan": results["plan"] | {"full": False}}, key)
    finished = {}
    for name, seconds in results["stage_seconds"].items():
        content = re.fullmatch(r"content pretraining \(.+: (.+)\)", name)
        accuracy = {"content_accuracy": results["content_pretraining_accuracy"][content[1]]} if content else None
        finished[name] = {"seconds": seconds, "result": accuracy, "environment": results.get("environment")}
    return finished


class Stages:
    """Runs and times named stages: a header in the log before each, a line on the console (`reporter`) after; with
    a `record`, each finished stage is written to it, and a stage it already holds is kept rather than run (its time
    is the one recorded, its result the one recorded, None for a result that is not JSON)."""

    def __init__(self, reporter: StageReporter | None = None, record: StageRecord | None = None):
        self.seconds: dict[str, float] = {}
        self.reused: list[str] = []
        self.reporter = reporter
        self.record = record

    def reused_environments(self) -> list[dict]:
        """The distinct environments (code, libraries, machine) of the runs that made the stages kept here."""
        environments = []
        for name in self.reused:
            environment = self.record.finished[name].get("environment")
            if environment not in environments:
                environments.append(environment)
        return environments

    def run(self, name: str, function: Callable, *args, **kwargs):
        if self.record is not None and self.record.keeps(name):
            kept = self.record.finished[name]
            self.seconds[name] = kept["seconds"]
            self.reused.append(name)
            print(f"\n== {name}: kept from an earlier run here ({kept['seconds']:.0f} s then) ==", flush=True)
            if self.reporter is not None:
                self.reporter.finished(name, kept["seconds"], reused=True)
            return kept["result"]
        print(f"\n== {name} ==", flush=True)
        start = time.perf_counter()
        result = function(*args, **kwargs)
        self.seconds[name] = round(time.perf_counter() - start, 1)
        print(f"== {name}: {self.seconds[name]:.0f} s ==", flush=True)
        if self.record is not None:
            self.record.add(name, self.seconds[name], result)
        if self.reporter is not None:
            self.reporter.finished(name, self.seconds[name])
        return result


def train_in_process(args: TrainerArguments) -> dict:
    """Run the trainer of `args` as `accelerate launch scripts/<name>.py` would, in this process."""
    # Each trainer makes its own Accelerator; the previous one's process-wide state must not leak into it.
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    return TRAINERS[type(args)](args)


def trainer_arguments(plan: QuickstartPlan, out_dir: str | Path, seed: int = 0) -> dict[str, TrainerArguments]:
    """Every trainer run of a quickstart, by stage name in the order they run; builds the arguments only."""
    runs = RunArguments(plan, Layout(Path(out_dir)), seed)
    return runs.method() | runs.variants() | runs.baselines()


@dataclass(frozen=True)
class RunArguments:
    """The arguments of the quickstart's trainer runs, as a user would give them on the command line."""

    plan: QuickstartPlan
    layout: Layout
    seed: int

    def __post_init__(self):
        if unknown := set(self.plan.row_learning_rates) - set(tuned_rows()):
            raise ValueError(
                f"row_learning_rates names no fine-tuned row with a rate of its own: {sorted(unknown)} (rows: "
                f"{tuned_rows()}; a variant trains at its row's rate)"
            )

    def method(self) -> dict[str, TrainerArguments]:
        """CSKD's runs: CFA of both backbones, the scorers fine-tuned from them and from the content-pretrained
        backbones (NIMA*), then KD and SKD from the CFA teacher's scorer into the CFA student."""
        plan, models = self.plan, self.layout.models
        architectures = plan.architectures()
        runs: dict[str, TrainerArguments] = {
            f"CFA ({role})": self.align([str(self.layout.clip)], architecture, None, f"cfa-{role}")
            for role, architecture in architectures.items()
        }
        for role, epochs in (("teacher", plan.finetune_epochs), ("student", plan.student_epochs)):
            architecture = architectures[role]
            content = str(self.layout.content_checkpoint(architecture))
            runs[f"nima-{role}"] = self.finetune(
                f"nima-{role}", architecture, epochs, backbone_checkpoint_path=content
            )
            aligned = str(models / f"cfa-{role}")
            runs[f"cfa-{role}-scorer"] = self.finetune(f"cfa-{role}-scorer", architecture, epochs, model=aligned)
        runs["kd-student"] = self.distil("kd-student")
        runs["cskd-student"] = self.distil(
            "cskd-student",
            unlabeled=[self.layout.unlabeled],
            mu=plan.mu,
            teacher_cache=str(self.layout.cache("skd-teacher")),
        )
        return runs

    def variants(self) -> dict[str, TrainerArguments]:
        """`--full`'s runs that measure a choice rather than a method: the student's CFA from the teacher cache
        (CLIP's embedding of each image's centre crop, while the student sees a random crop and flip), fine-tuned as
        "CFA student" is; SKD with the live teacher on the student's view of the unlabeled images (the paper's eq. 5),
        trained as "CSKD student" is; and the CFA of the Fig. 3 diagnostic's ViT (live teacher, as the paper)."""
        plan, clip, student = self.plan, str(self.layout.clip), self.plan.student_architecture
        if not plan.full:
            return {}
        return {
            "CFA (student, cached targets)": self.align([clip], student, ["student"], "cfa-student-cached"),
            "cfa-student-cached-scorer": self.finetune(
                "cfa-student-cached-scorer",
                student,
                plan.student_epochs,
                model=str(self.layout.models / "cfa-student-cached"),
            ),
            "cskd-student-live": self.distil("cskd-student-live", unlabeled=[self.layout.unlabeled], mu=plan.mu),
            "CFA (ViT)": self.align([clip], plan.vit_architecture, None, "cfa-vit", model_args=plan.vit_model_args),
        }

    def baselines(self) -> dict[str, TrainerArguments]:
        """The trained baselines: the tiny CLIP fine-tuned directly (Hentschel et al.; premise P2), and with `--full`
        multi-teacher CFA, the student aligned to two teachers (the tiny CLIP and the teacher's content classifier) and
        then fine-tuned, a two-stage variant of CFA in the spirit of Hou et al.'s several object classifiers, and Hou
        et al.'s joint student."""
        plan, clip = self.plan, str(self.layout.clip)
        student, teacher = plan.student_architecture, plan.teacher_architecture
        finetuned = {
            "clip-finetuned": self.finetune("clip-finetuned", student, plan.finetune_epochs, clip_backbone=clip)
        }
        if not plan.full:
            return finetuned
        classifier = f"timm:{teacher}@{self.layout.content_checkpoint(teacher)}"
        multi_teacher = str(self.layout.models / "multi-teacher-cfa-student")
        return finetuned | {
            # The tiny CLIP's targets for the student are those the cached variant's CFA cached (same images, view
            # and CLIP; the cache's description check refuses them otherwise): only the classifier embeds the corpus.
            MULTI_TEACHER_CFA: self.align(
                [clip, classifier], student, ["student", "multi-teacher/teacher1"], "multi-teacher-cfa-student"
            ),
            "multi-teacher-cfa-student-scorer": self.finetune(
                "multi-teacher-cfa-student-scorer", student, plan.student_epochs, model=multi_teacher
            ),
            # Hou et al.'s own method, joint mode: one stage on the labeled images, the EMD plus the alignment of the
            # student's features to the object classifier's (the teacher's content-pretrained backbone).
            "hou-joint-student": self.finetune(
                "hou-joint-student",
                student,
                plan.student_epochs,
                backbone_checkpoint_path=str(self.layout.content_checkpoint(student)),
                alignment_teacher=[classifier],
            ),
        }

    def align(
        self, teachers: list[str], architecture: str, caches: list[str] | None, name: str, **model
    ) -> cfa.CFAArguments:
        """Alignment of a content-pretrained `architecture` (with `model`'s options) to `teachers` on the unlabeled
        corpus, into `models/<name>`: with the live teachers (the paper's recipe) when `caches` is None, else each
        teacher's targets cached in its folder of `caches` under `cache/` (one folder for one teacher:
        `--teacher_cache`, as a user would write it)."""
        folders = [str(self.layout.cache(folder)) for folder in caches or []]
        if not folders:
            caches = {}
        elif len(teachers) == 1:
            caches = {"teacher_cache": folders[0]}
        else:
            caches = {"teacher_caches": folders}
        return cfa.CFAArguments(
            teacher=teachers,
            unlabeled=[self.layout.unlabeled],
            architecture=architecture,
            backbone_checkpoint_path=str(self.layout.content_checkpoint(architecture)),
            num_epochs=self.plan.cfa_epochs,
            lr_decay_epochs=[self.plan.cfa_epochs],
            output_dir=str(self.layout.models / name),
            **caches,
            **model,
            **self.common(),
        )

    def finetune(self, name: str, architecture: str, epochs: int, **start) -> supervised.FinetuneArguments:
        """Supervised fine-tuning on SynthAVA into `models/<name>`, from the weights `start` names (and other
        fine-tuning options)."""
        return supervised.FinetuneArguments(
            dataset=str(self.layout.data_dir),
            architecture=architecture,
            **start,
            num_epochs=epochs,
            **self.scoring(epochs),
            output_dir=str(self.layout.models / name),
            **self.common(name),
        )

    def distil(self, name: str, **semi_supervised) -> skd.SKDArguments:
        """Distillation from the CFA teacher's scorer into the CFA student, into `models/<name>`: KD on the labeled
        images, SKD with the unlabeled options `semi_supervised` too."""
        models = self.layout.models
        return skd.SKDArguments(
            dataset=str(self.layout.data_dir),
            teacher=str(models / "cfa-teacher-scorer"),
            model=str(models / "cfa-student"),
            num_epochs=self.plan.student_epochs,
            **self.scoring(self.plan.student_epochs),
            beta=self.plan.beta,
            **semi_supervised,
            output_dir=str(models / name),
            **self.common(name),
        )

    def scoring(self, epochs: int) -> dict:
        """The options of every run that trains a scorer for `epochs`, CSKD's MLP head among them: pre-trained
        weights are the only difference between the rows the report compares."""
        plan = self.plan
        return {
            "lr_decay_epochs": [min(plan.lr_decay_epoch, epochs - 1)],
            "head_dropout": plan.head_dropout,
            "head_hidden_sizes": [plan.head_hidden_size],
        }

    def common(self, row: str | None = None) -> dict:
        """The options of every run (of the fine-tuned `row`, for its learning rate); the runs end long before their
        first checkpoint."""
        plan = self.plan
        return {
            "seed": self.seed,
            "image_size": plan.image_size,
            "batch_size": plan.batch_size,
            "learning_rate": plan.row_learning_rates.get(VARIANT_OF.get(row, row), plan.learning_rate),
            "num_workers": plan.num_workers,
            "report_to": "none",
            "checkpointing_steps": 100_000,
            "checkpoints_total_limit": 1,
        }


def run_quickstart(
    out_dir: str | Path = "outputs/quickstart",
    smoke: bool = False,
    seed: int = 0,
    verbose: bool = False,
    full: bool = False,
    reuse: bool = False,
) -> dict:
    """Run every stage of the default plan (`smoke`: the smoke plan's sizes; `full`: with the remaining baselines,
    the recipe's variants and Fig. 3) and write `results.json`, `results.md`, `ier.png` and the model folders into
    `out_dir`. With `reuse`, the stages an earlier run of the same seed and plan (`full` aside) finished in `out_dir`
    are kept, with the times they took then (`StageRecord`).

    The console gets the log's path, one line per stage with the time left, and at the end the results, the paper's
    claims as this run shows them and what to try next; everything else goes to `out_dir/quickstart.log`, unless
    `verbose`.
    """
    # `datasets` pauses 5 s after every pass over a Parquet stream (a guard against apache/arrow#45214 at thread
    # shutdown); negligible per epoch of a real corpus, but most of the time of a small world's many short passes.
    datasets.config.SLEEP_TIME_ON_THREADS_SHUTDOWN = 0.5
    plan = replace(SMOKE if smoke else DEFAULT, full=full)
    plan_name = " and ".join(name for name, chosen in (("smoke", smoke), ("full", full)) if chosen) or "default"
    layout = Layout(Path(out_dir))
    log_path = layout.out_dir / "quickstart.log"
    expected = expected_stage_seconds(plan)
    with console_and_log(log_path, verbose) as console:
        print(f"cskd quickstart, {plan_name} plan, seed {seed}: each stage's output goes to {log_path}", file=console)
        record = StageRecord.start(layout.out_dir / "stages.json", run_key(plan, seed), reuse, run_environment())
        kept = [name for name in expected if record.keeps(name)]
        to_run = sum(seconds for name, seconds in expected.items() if name not in kept)
        kept_note = f" ({len(kept)} kept from an earlier run)" if kept else ""
        print(f"{len(expected)} stages{kept_note}, about {duration(to_run)} on 2 idle cores", file=console)
        stages = Stages(StageReporter(console, expected), record)
        torch.set_num_threads(plan.torch_threads)
        summary, test_split = run_stages(stages, plan, layout, seed, smoke)
        write_report(layout, test_split, summary, console, log_path)
    return summary


def run_stages(stages: Stages, plan: QuickstartPlan, layout: Layout, seed: int, smoke: bool) -> tuple[dict, Dataset]:
    """Every stage in order; returns the run's summary (what `results.json` holds) and the test split."""
    environment = run_environment()  # the code that runs, read before a long run, during which a commit may land
    runs = RunArguments(plan, layout, seed)
    world = build_world(stages, plan, layout, seed)
    stand_ins = train_stand_ins(stages, plan, layout, world, seed)
    train_method(stages, runs.method())
    train_method(stages, runs.variants())
    zero_shot = run_baselines(stages, plan, layout, world, runs.baselines())
    evaluation = evaluate(stages, plan, layout, world, zero_shot)
    return {
        "seed": seed,
        "smoke": smoke,
        "full": plan.full,
        "plan": asdict(plan),
        "synthava_train_votes": world.vote_statistics,
        "tiny_clip_retrieval": stand_ins.retrieval,
        "content_pretraining_accuracy": stand_ins.content_accuracy,
        "attention": evaluation.attention,
        "attention_change": (
            attention_change(evaluation.attention[VIT_BEFORE_CFA], evaluation.attention[VIT_AFTER_CFA])
            if evaluation.attention
            else {}
        ),
        "results": evaluation.results,
        "stage_seconds": stages.seconds,
        # Stages kept from an earlier run in the folder (`--reuse`): their times are those they took then, with the
        # code and machine of `reused_from`.
        "reused_stages": stages.reused,
        "reused_seconds": round(sum(stages.seconds[name] for name in stages.reused), 1),
        "reused_from": stages.reused_environments(),
        "torch_threads": torch.get_num_threads(),
        "environment": environment,
        "total_seconds": round(sum(stages.seconds.values()), 1),
    }, world.dataset["test"]


def planned_stages(plan: QuickstartPlan) -> list[str]:
    """The names of the stages a run of `plan` times, in their order (`run_stages`)."""
    runs = RunArguments(plan, Layout(Path(".")), seed=0)
    backbones = plan.architectures() | ({FIG3_VIT: plan.vit_architecture} if plan.full else {})
    return [
        "SynthAVA",
        "tiny CLIP",
        *(f"content pretraining ({role}: {architecture})" for role, architecture in backbones.items()),
        *runs.method(),
        *runs.variants(),
        "CLIP zero-shot",
        "CLIP linear probe",
        "content-pretrained linear probe",
        *runs.baselines(),
        *(["attention diagnostic"] if plan.full else []),
        "evaluation on the test split",
    ]


def expected_stage_seconds(plan: QuickstartPlan) -> dict[str, float]:
    """What each stage of `plan` took alone on 2 idle cores (`STAGE_SECONDS` of its sizes); a stage not recorded at
    the default sizes is estimated from its smoke time, scaled as the stages recorded at both sizes scale."""
    smoke = STAGE_SECONDS["smoke"]
    recorded = smoke if plan.splits == SMOKE.splits else STAGE_SECONDS["default"]
    shared = recorded.keys() & smoke.keys()
    scale = sum(recorded[name] for name in shared) / sum(smoke[name] for name in shared) if shared else 1.0
    estimates = {name: smoke[name] * scale for name in smoke} | recorded
    return {name: estimates[name] for name in planned_stages(plan) if name in estimates}


def run_environment() -> dict:
    """What a run's numbers may depend on besides its seed and plan: the code (the commit, when cskd-hf runs from its
    repository, and whether it had uncommitted changes), the versions of torch, timm and transformers, the CPU and the
    torch threads."""
    import platform
    import subprocess

    import timm
    import transformers

    from .. import __version__

    repository = Path(__file__).resolve().parents[3]  # src/cskd_hf/synthetic/quickstart.py in a checkout
    commit = dirty = None
    if (repository / ".git").exists() and (repository / "src" / "cskd_hf").is_dir():
        git = ["git", "-C", str(repository)]
        try:
            head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
            status = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                    text=True, check=True)  # fmt: skip
            commit, dirty = head.stdout.strip(), bool(status.stdout.strip())
        except (OSError, subprocess.CalledProcessError):
            pass  # no git: the version says what ran (as for an installed wheel)
    return {
        "cskd_hf": __version__,
        "commit": commit,
        "uncommitted_changes": dirty,
        "torch": torch.__version__,
        "timm": timm.__version__,
        "transformers": transformers.__version__,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }


def cpu_model() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what `platform` knows."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def build_world(stages: Stages, plan: QuickstartPlan, layout: Layout, seed: int) -> World:
    """SynthAVA: the labeled splits and the unlabeled corpus, written to `layout.data_dir` (read from there when an
    earlier run in the folder wrote it)."""
    dataset = stages.run(
        "SynthAVA", write_synthava, layout.data_dir, splits=plan.splits, image_size=plan.image_size, seed=seed
    )
    if dataset is None:
        dataset = load_labeled(layout.data_dir)
    return World(dataset, vote_statistics(dataset["train"]))


def train_stand_ins(
    stages: Stages,
    plan: QuickstartPlan,
    layout: Layout,
    world: World,
    seed: int,
    roles: tuple[str, ...] | None = None,
) -> StandIns:
    """The tiny CLIP, trained on the unlabeled corpus's captions, and the content-pretrained backbones of `roles`
    (by default the teacher's and the student's, and with `plan.full` the Fig. 3 ViT's)."""
    if roles is None:
        roles = ("teacher", "student", FIG3_VIT) if plan.full else ("teacher", "student")
    stages.run(
        "tiny CLIP",
        train_tiny_clip,
        world.dataset["unlabeled"],
        layout.clip,
        epochs=plan.clip_epochs,
        batch_size=plan.clip_batch_size,
        seed=seed,
    )
    test = world.dataset["test"]
    retrieval = retrieval_recall(layout.clip, test.select(range(min(200, len(test)))))

    # The "ImageNet" of this world: well-exposed, sharp, clean renders of the subjects, labeled by content only
    # (rendered when a stage needs them: not for stages kept from an earlier run).
    images = functools.cache(
        lambda: generate({"content": plan.content_images}, image_size=plan.image_size, seed=seed + 1, neutral=True)
    )
    backbones = {role: (architecture, {}) for role, architecture in plan.architectures().items()}
    backbones[FIG3_VIT] = (plan.vit_architecture, timm_model_kwargs(vit_config(plan, layout)))
    content_accuracy = {}
    for role in roles:
        architecture, model_args = backbones[role]
        content_accuracy[architecture] = stages.run(
            f"content pretraining ({role}: {architecture})",
            lambda *args, **kwargs: pretrain_content_classifier(images()["content"], *args, **kwargs),
            architecture,
            layout.content_checkpoint(architecture),
            len(CONTENT_CLASSES),
            epochs=plan.content_epochs,
            seed=seed,
            num_workers=plan.num_workers,
            model_args=model_args,
        )["content_accuracy"]
    return StandIns(retrieval, content_accuracy)


def train_method(stages: Stages, arguments: dict[str, TrainerArguments]) -> None:
    """Trainer runs (CSKD's, `RunArguments.method`, or the variants'), each a stage."""
    for name, args in arguments.items():
        stages.run(name, train_in_process, args)


def run_baselines(
    stages: Stages, plan: QuickstartPlan, layout: Layout, world: World, arguments: dict[str, TrainerArguments]
) -> dict:
    """The seed papers' baselines with the same stand-ins: the tiny CLIP prompted, probed and fine-tuned directly,
    the probe on the content-pretrained backbone, and with `plan.full` the multi-teacher CFA student and Hou et al.'s
    joint student (`RunArguments.baselines`).

    Returns the zero-shot row's metrics: the one row without a model folder.
    """
    zero_shot = stages.run(
        "CLIP zero-shot", evaluate_zero_shot, layout.clip, world.dataset, prompts=ZERO_SHOT_PROMPTS, progress=False
    )
    fit_probes(stages, plan, layout, world)
    for name, args in arguments.items():
        stages.run(name, train_in_process, args)
    return zero_shot


def fit_probes(stages: Stages, plan: QuickstartPlan, layout: Layout, world: World) -> None:
    """The two linear probes of premise P1: on the tiny CLIP's embedding and on the content-pretrained teacher
    backbone's features, into `models/clip-probe` and `models/content-probe`."""
    stages.run(
        "CLIP linear probe",
        fit_linear_probe,
        layout.clip,
        world.dataset,
        layout.models / "clip-probe",
        cache_dir=layout.cache("probe"),
        num_workers=plan.num_workers,
    )
    stages.run(
        "content-pretrained linear probe",
        fit_linear_probe,
        content_probe_config(plan, layout, bin_scores_of(world.dataset["train"])),
        world.dataset,
        layout.models / "content-probe",
        cache_dir=layout.cache("probe"),
        num_workers=plan.num_workers,
    )


def content_probe_config(plan: QuickstartPlan, layout: Layout, bin_scores: list[float]) -> CSKDConfig:
    """The teacher backbone as content pretraining leaves it (this world's ImageNet weights), frozen under a linear
    head over the bins: the model of the content-pretrained probe."""
    return CSKDConfig(
        architecture=plan.teacher_architecture,
        image_size=plan.image_size,
        backbone_checkpoint_path=str(layout.content_checkpoint(plan.teacher_architecture)),
        bin_scores=list(bin_scores),
        head_dropout=0.0,
    )


def vit_config(plan: QuickstartPlan, layout: Layout) -> CSKDConfig:
    """The Fig. 3 ViT as content pretraining leaves it: the model CFA starts from."""
    return CSKDConfig(
        architecture=plan.vit_architecture,
        image_size=plan.image_size,
        model_args=plan.vit_model_args,
        backbone_checkpoint_path=str(layout.content_checkpoint(plan.vit_architecture)),
    )


def evaluate(stages: Stages, plan: QuickstartPlan, layout: Layout, world: World, zero_shot: dict) -> Evaluation:
    """With `plan.full` the attention diagnostic; then every row, and an untrained student as the floor, on the test
    split."""
    test = world.dataset["test"]
    attention = fig3_attention(stages, plan, layout, test) if plan.full else {}

    # The same student architecture with random weights: the floor every trained row must clear. Its weights come
    # from the global RNG as the stages before leave it.
    untrained = CSKDForAestheticScoring(
        CSKDConfig(
            architecture=plan.student_architecture,
            image_size=plan.image_size,
            head_dropout=plan.head_dropout,
            head_hidden_sizes=[plan.head_hidden_size],
        )
    )
    untrained.save_pretrained(layout.models / "untrained-student")
    CSKDImageProcessor.from_model_config(untrained.config).save_pretrained(layout.models / "untrained-student")

    def evaluate_all() -> dict[str, dict]:
        def row(folder: str) -> dict:
            return evaluate_model(layout.models / folder, test, progress=False)

        rows = {}
        for name, folder in plan_rows(plan):
            if (name, folder) == PREMISE_ROWS[0]:
                rows[ZERO_SHOT_ROW] = zero_shot  # the seed papers' baselines open with CLIP prompted zero-shot
            rows[name] = row(folder)
        rows["untrained student"] = row("untrained-student")
        return rows

    return Evaluation(stages.run("evaluation on the test split", evaluate_all), attention)


def fig3_attention(stages: Stages, plan: QuickstartPlan, layout: Layout, test: Dataset) -> dict:
    """The paper's Fig. 3: a ViT before CFA (content-pretrained, this world's ImageNet weights) and after. Beside it,
    the tiny CLIP's tower as it is (the probe's frozen backbone) and after direct fine-tuning."""
    before_cfa = vit_config(plan, layout)
    CSKDModel.from_config(before_cfa).save_pretrained(layout.vit_before_cfa)
    CSKDImageProcessor.from_model_config(before_cfa).save_pretrained(layout.vit_before_cfa)
    attention_images = [row["image"].convert("RGB") for row in test.select(range(32))]
    return stages.run(
        "attention diagnostic",
        analyze_models,
        [
            layout.vit_before_cfa,
            layout.models / "cfa-vit",
            layout.models / "clip-probe",
            layout.models / "clip-finetuned",
        ],
        attention_images,
        layout.out_dir / "attention",
        names=[VIT_BEFORE_CFA, VIT_AFTER_CFA, "CLIP (frozen)", "CLIP fine-tuned"],
    )


def write_report(layout: Layout, test: Dataset, summary: dict, console: TextIO, log_path: Path) -> None:
    """Sample test images to score, `ier.png`, `results.json` and `results.md`; on the console the table, the
    paper's claims as this run shows them, where everything is and the commands to try next."""
    test_images = layout.out_dir / "test-images"
    test_images.mkdir(exist_ok=True)
    for row in test.select(range(min(50, len(test)))):
        row["image"].save(test_images / f"{row['image_id']}.jpg", quality=95)
    results = summary["results"]
    plot_interval_error_rates(
        {name: results[name] for name, _ in ROWS},
        layout.out_dir / "ier.png",
        title="SynthAVA test: interval error rate",
    )
    (layout.out_dir / "results.json").write_text(json.dumps(summary, indent=1))
    table = comparison_table(results, counts=False)
    (layout.out_dir / "results.md").write_text(results_markdown(summary, table))
    premises = [] if summary["smoke"] else [*premise_verdicts(results, summary["plan"]["splits"]), ""]
    lines = ["", table, "", *premises, *claim_verdicts(results, summary["smoke"]), ""]
    student = layout.models / "cskd-student"
    attention = ", attention/" if summary["attention"] else ""
    lines += [
        f"Results: {layout.out_dir / 'results.md'} (and results.json, ier.png{attention}); models: {layout.models}/;",
        f"the log: {log_path}. SynthAVA is synthetic: these numbers say nothing about real photographs.",
        "Next, score photos with the CSKD student, or open the Space on the quickstart's models:",
        f"  cskd score {test_images} --model {student}",
        f"  python spaces/app.py --model {student} --model {layout.models / 'cfa-teacher-scorer'}",
    ]
    print("\n".join(lines), file=console, flush=True)


# The paper's claims between rows of one run, as (the better row, the worse one): CFA over ImageNet pre-training
# (Table 1) and SKD over KD and over the CFA student (Table 6).
CLAIMS = [
    ("CFA teacher", "NIMA* teacher"),
    ("CFA student", "NIMA* student"),
    ("CSKD student (SKD)", "KD student"),
    ("CSKD student (SKD)", "CFA student"),
]


# The seed papers' premises the claims rest on (#26), each between rows that involve no CFA and no SKD: (name, the
# better row, the worse row, the margin the better one may fall short by). P1: Hentschel et al.'s step 2, the CLIP
# probe beats the probe on ImageNet features and competes with fully fine-tuned ImageNet networks (within 0.02);
# P2: their step 3, fine-tuned CLIP beats its probe and the fine-tuned ImageNet network.
PREMISES = [
    ("P1", "CLIP linear probe", "Content-pretrained linear probe", 0.0),
    ("P1", "CLIP linear probe", "NIMA* teacher", 0.02),
    ("P2", "CLIP fine-tuned", "CLIP linear probe", 0.0),
    ("P2", "CLIP fine-tuned", "NIMA* teacher", 0.0),
]
# P3, the CSKD setting: labels are the scarce resource (AVA's 255k labeled images against 3.1M unlabeled, ~12x).
MIN_UNLABELED_RATIO = 10


def premise_verdicts(results: dict[str, dict], splits: dict[str, int]) -> list[str]:
    """One line per premise: its rows' test SRCC (or the split sizes) and whether this run meets it."""
    lines = ["The seed papers' premises in this one run (rows without CFA or SKD; the seeds report gives intervals):"]
    for name, better, worse, margin in PREMISES:
        ours, theirs = results[better]["srcc"], results[worse]["srcc"]
        shortfall = f" - {margin:g}" if margin else ""
        verdict = "met" if ours > theirs - margin else "not met"
        lines.append(f"  {name}: {better} > {worse}{shortfall}: SRCC {ours:.3f} vs {theirs:.3f}, {verdict}")
    ratio = splits["unlabeled"] / splits["train"]
    verdict = "met" if ratio >= MIN_UNLABELED_RATIO else "not met"
    lines.append(
        f"  P3: unlabeled images >= {MIN_UNLABELED_RATIO}x the labeled train split: {splits['unlabeled']} / "
        f"{splits['train']} = {ratio:.1f}x, {verdict}"
    )
    return lines


def claim_verdicts(results: dict[str, dict], smoke: bool) -> list[str]:
    """One line per claim: the two rows' test SRCC and whether this run orders them as the paper does."""
    if smoke:
        lines = ["A smoke run is too small to compare rows: the orderings below are no finding either way."]
    else:
        lines = [
            "The paper's claims in this one run (`python benchmarks/seeds.py` gives each one's interval over seeds):"
        ]
    for better, worse in CLAIMS:
        ours, theirs = results[better]["srcc"], results[worse]["srcc"]
        verdict = "as the paper" if ours > theirs else "not as the paper"
        lines.append(f"  {better} > {worse}: SRCC {ours:.3f} vs {theirs:.3f}, {verdict}")
    return lines


def results_markdown(summary: dict, table: str) -> str:
    plan = summary["plan"]
    stages = "\n".join(f"| {name} | {seconds:.0f} |" for name, seconds in summary["stage_seconds"].items())
    retrieval = summary["tiny_clip_retrieval"]
    content = ", ".join(f"{arch} {acc:.2f}" for arch, acc in summary["content_pretraining_accuracy"].items())
    votes = summary["synthava_train_votes"]
    kind = "".join(f", {name}" for name in ("smoke", "full") if summary.get(name))
    return f"""# CSKD quickstart on SynthAVA (seed {summary["seed"]}{kind})

**SynthAVA is synthetic: these numbers say nothing about real photographs.** They show the method running end to
end: CLIP-based feature alignment (CFA), a fine-tuned teacher, and semi-supervised distillation (SKD) into a student.

Teacher `{plan["teacher_architecture"]}`, student `{plan["student_architecture"]}`, {plan["image_size"]} px;
splits {plan["splits"]}. CFA aligns to the live tiny CLIP, as the paper. SKD with mu = {plan["mu"]}, beta =
{plan["beta"]}, the teacher's distributions for the unlabeled images read from its cache (their centre view; the
Training docs' "SKD teacher cache"). Every fine-tuned row, NIMA* and the baselines included, has CSKD's MLP head
(one hidden layer of {plan.get("head_hidden_size")}) and the same recipe: pre-trained weights are the only difference
between the rows the report compares, as in the paper's Table 1. Each fine-tuned row's learning rate comes from one
grid on the validation split ({learning_rates_text(plan)}). The probes are linear.

## Test split

{rows_text(summary)}

{table}

![interval error rate](ier.png)
{fig3_section(summary) if summary["attention"] else ""}
## The stand-ins

- SynthAVA train votes: MOS mean {votes["mos_mean"]:.2f}, spread {votes["mos_std"]:.2f}, per-image vote std
  {votes["vote_std"]:.2f}, {votes["min_votes"]}-{votes["max_votes"]} votes per image.
- Tiny CLIP, image-to-caption retrieval on {retrieval["pairs"]} held-out pairs: recall@1 {retrieval["recall@1"]:.3f}
  (chance {retrieval["chance@1"]:.3f}), recall@5 {retrieval["recall@5"]:.3f} (chance {retrieval["chance@5"]:.3f}).
- Content pretraining (the "ImageNet" stand-in), training accuracy over the subject classes: {content}.

## Time per stage (seconds)

| stage | s |
|---|---|
{stages}
| total | {summary["total_seconds"]:.0f} |
"""


def learning_rates_text(plan: dict) -> str:
    """The plan's learning rates as the report states them."""
    chosen = ", ".join(f"{row} {rate:g}" for row, rate in plan.get("row_learning_rates", {}).items())
    return f"{chosen}; the others {plan['learning_rate']:g}" if chosen else f"all {plan['learning_rate']:g}"


def rows_text(summary: dict) -> str:
    """What the report's rows are, beyond the paper's."""
    baselines = (
        "the seed papers' baselines: the tiny CLIP prompted zero-shot, probed linearly and fine-tuned directly "
        "(Hentschel et al., 2022), and the same linear probe on the content-pretrained teacher backbone (premise P1)"
    )
    if not summary.get("full"):
        return (
            f"Rows as the CSKD paper's Tables 1 and 6; then {baselines}. `cskd quickstart --full` adds the other "
            "baselines, the recipe's variants and Fig. 3."
        )
    return f"""Rows as the CSKD paper's Tables 1 and 6; two variants of the recipe: the student's CFA from the teacher
cache (CLIP's embedding of each image's centre crop, while the student sees a random crop and flip) fine-tuned as "CFA
student" is, and SKD with the live teacher on the student's augmented view of the unlabeled images (the paper's eq.
5), trained as the CSKD student is; then {baselines}; multi-teacher CFA, the student aligned to two teachers (the tiny
CLIP and the content classifier, from their caches, like the cached variant) and then fine-tuned; and Hou et al.
(2022)'s joint mode, the student fine-tuned on the labels while its features are aligned to the content classifier's,
in one stage."""


def fig3_section(summary: dict) -> str:
    """The report's Fig. 3 section (`--full`): the ViT's attention statistics before and after CFA, and their
    reading."""
    plan = summary["plan"]
    attention = "\n".join(
        f"| {name} | {' / '.join(f'{d:.1f}' for d in result['mean_attention_distance'])} | "
        f"{' / '.join(f'{v:.3g}' for v in result['attention_distance_variance'])} | "
        f"{' / '.join(f'{e:.2f}' for e in result['attention_entropy'])} |"
        for name, result in summary["attention"].items()
    )
    return f"""
## Attention before and after CFA (the CSKD paper's Fig. 3)

`{plan["vit_architecture"]}` with `{json.dumps(plan.get("vit_model_args"))}` before CFA (content-pretrained) and
after; beside it, the tiny CLIP's tower frozen and fine-tuned directly. Per layer, on 32 test images, the mean over
heads of the mean attention distance, its variance over heads, and the mean entropy (`cskd analyze attention`; per
head in `attention/attention.json`, plot in `attention/attention.png`):

| tower | mean attention distance (px) | its variance over heads | attention entropy (nats) |
|---|---|---|---|
{attention}

{fig3_reading(summary)}
"""


def vit_tokens(plan: dict) -> int:
    """The tokens the Fig. 3 ViT attends over (its patches and the class token), from a plan as results.json has it;
    uniform attention over them has entropy log(tokens)."""
    return (plan["image_size"] // plan["vit_model_args"]["patch_size"]) ** 2 + 1


def fig3_reading(summary: dict) -> str:
    """What the paper reports for Fig. 3 and what this run's ViT shows, averaged over layers, with the bounds of
    uniform attention: a ViT that has learnt little attends almost uniformly, and from there the entropy can only
    fall and the variance over heads only rise, whatever CFA does."""
    change, plan = summary["attention_change"], summary["plan"]
    tokens = vit_tokens(plan)
    accuracy = summary["content_pretraining_accuracy"][plan["vit_architecture"]]
    names = {
        "mean_attention_distance": "mean attention distance",
        "attention_distance_variance": "its variance over heads",
        "attention_entropy": "entropy",
    }
    moves = "; ".join(
        f"{names[statistic]} {change[statistic]['before']:.4g} → {change[statistic]['after']:.4g} "
        f"({'as' if change[statistic]['as_paper'] else 'unlike'} the paper)"
        for statistic in PAPER_FIG3_DIRECTIONS
    )
    return (
        "The paper (ViT-Tiny, before and after CFA): the mean attention distance decreases, its variance increases, "
        f"and the entropy decreases. Here, averaged over layers: {moves}. Uniform attention over the ViT's {tokens} "
        f"tokens has entropy {math.log(tokens):.3g} nats and no variance over heads; the content pretraining that "
        f"precedes CFA reached {accuracy:.2f} training accuracy (chance {1 / len(CONTENT_CLASSES):.2f})."
    )


__all__ = [
    "BASELINE_ROWS",
    "DEFAULT",
    "FULL",
    "FULL_BASELINE_ROWS",
    "MULTI_TEACHER_CFA",
    "PLANS",
    "PREMISE_ROWS",
    "ROWS",
    "SMOKE",
    "VARIANT_OF",
    "VARIANT_ROWS",
    "VIT_AFTER_CFA",
    "VIT_BEFORE_CFA",
    "ZERO_SHOT_ROW",
    "QuickstartPlan",
    "plan_rows",
    "planned_stages",
    "run_quickstart",
    "trainer_arguments",
    "tuned_rows",
]
