"""`cskd quickstart`: the whole CSKD method, and its baselines, on SynthAVA with tiny stand-in models, on a CPU.

Every stage runs through the project's own code, the same that real runs use: SynthAVA replaces AVA and the unlabeled
corpus, a tiny CLIP pretrained on SynthAVA's captions replaces OpenAI's CLIP (loaded through the same `--teacher`
path), and timm backbones pretrained on SynthAVA's content classes replace ImageNet weights (loaded through the same
`backbone_checkpoint_path`). The trainers are called in process, with arguments a user would give on the command line.

SynthAVA is synthetic: these numbers say nothing about real photographs.
"""

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .synthava import CONTENT_CLASSES, generate, unlabeled_source, vote_statistics, write_synthava

logger = logging.getLogger(__name__)


@dataclass
class QuickstartPlan:
    """Sizes and epochs of each stage; `FULL` takes 13-24 minutes on 2 idle cores (machines
    of one kind differ by up to 2x; budget: 15 on the faster), `SMOKE` 2-3."""

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
    lr_decay_epoch: int = 3
    batch_size: int = 32
    mu: int = 2
    beta: float = 15.0
    learning_rate: float = 1e-3
    head_dropout: float = 0.2
    num_workers: int = 2
    extra: dict = field(default_factory=dict)


FULL = QuickstartPlan(splits={"unlabeled": 8_000, "train": 4_000, "validation": 1_000, "test": 2_000})
SMOKE = QuickstartPlan(
    splits={"unlabeled": 1_500, "train": 600, "validation": 200, "test": 400},
    content_images=1_500,
    clip_epochs=2,
    content_epochs=2,
    cfa_epochs=1,
    finetune_epochs=3,
    student_epochs=3,
    lr_decay_epoch=2,
    mu=2,
    num_workers=0,
)

# The rows of the paper's Tables 1 and 6, in order: (row name, model folder under models/).
ROWS = [
    ("NIMA* teacher", "nima-teacher"),
    ("NIMA* student", "nima-student"),
    ("CFA teacher", "cfa-teacher-scorer"),
    ("CFA student", "cfa-student-scorer"),
    ("KD student", "kd-student"),
    ("CSKD student (SKD)", "cskd-student"),
]
# The seed papers' other methods (Hentschel et al. 2022, Hou et al. 2022), as model folders under models/.
BASELINE_ROWS = [
    ("CLIP linear probe", "clip-probe"),
    ("CLIP fine-tuned", "clip-finetuned"),
    ("Multi-teacher CFA student", "multi-teacher-cfa-student-scorer"),
]
ZERO_SHOT_ROW = "CLIP zero-shot"


class Stages:
    """Runs and times named stages, printing progress."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def run(self, name: str, function: Callable, *args, **kwargs):
        print(f"\n== {name} ==", flush=True)
        start = time.perf_counter()
        result = function(*args, **kwargs)
        self.seconds[name] = round(time.perf_counter() - start, 1)
        print(f"== {name}: {self.seconds[name]:.0f} s ==", flush=True)
        return result


def _train(trainer, arguments: list[str]):
    """Run a trainer module as `accelerate launch scripts/<name>.py ARGUMENTS` would, in this process."""
    from accelerate.state import AcceleratorState, GradientState

    # Each trainer makes its own Accelerator; the previous one's process-wide state must not leak into it.
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    return trainer.train(trainer.parse_arguments(trainer.ARGUMENTS, arguments))


def run_quickstart(out_dir: str | Path = "outputs/quickstart", smoke: bool = False, seed: int = 0) -> dict:
    """Run every stage and write `results.json`, `results.md`, `ier.png` and the model folders into `out_dir`."""
    import datasets.config

    from ..analysis import analyze_models
    from ..baselines.linear_probe import fit_linear_probe
    from ..baselines.zero_shot import evaluate_zero_shot
    from ..evaluation import comparison_table, evaluate_model, plot_interval_error_rates
    from ..models.cskd import CSKDConfig, CSKDForAestheticScoring, CSKDImageProcessor
    from ..training import cfa, skd, supervised
    from .content_pretraining import pretrain_content_classifier
    from .synthava import ZERO_SHOT_PROMPTS
    from .tiny_clip import retrieval_recall, train_tiny_clip

    # `datasets` pauses 5 s after every pass over a Parquet stream (a guard against apache/arrow#45214 at thread
    # shutdown); negligible per epoch of a real corpus, but most of the time of a small world's many short passes.
    datasets.config.SLEEP_TIME_ON_THREADS_SHUTDOWN = 0.5
    plan = SMOKE if smoke else FULL
    out_dir = Path(out_dir)
    data_dir, models = out_dir / "synthava", out_dir / "models"
    stages = Stages()
    dataset = stages.run(
        "SynthAVA", write_synthava, data_dir, splits=plan.splits, image_size=plan.image_size, seed=seed
    )
    statistics = vote_statistics(dataset["train"])

    stages.run(
        "tiny CLIP",
        train_tiny_clip,
        dataset["unlabeled"],
        models / "tiny-clip",
        epochs=plan.clip_epochs,
        batch_size=plan.clip_batch_size,
        seed=seed,
    )
    retrieval = retrieval_recall(models / "tiny-clip", dataset["test"].select(range(min(200, len(dataset["test"])))))

    # The "ImageNet" of this world: well-exposed, sharp, clean renders of the subjects, labeled by content only.
    content_set = generate({"content": plan.content_images}, image_size=plan.image_size, seed=seed + 1, neutral=True)
    imagenet, content_accuracy = {}, {}
    for role, architecture in (("teacher", plan.teacher_architecture), ("student", plan.student_architecture)):
        imagenet[role] = models / f"content-pretrained-{architecture}.safetensors"
        content_accuracy[architecture] = stages.run(
            f"content pretraining ({role}: {architecture})",
            pretrain_content_classifier,
            content_set["content"],
            architecture,
            imagenet[role],
            len(CONTENT_CLASSES),
            epochs=plan.content_epochs,
            seed=seed,
            num_workers=plan.num_workers,
        )["content_accuracy"]

    common = [
        "--seed",
        str(seed),
        "--image_size",
        str(plan.image_size),
        "--batch_size",
        str(plan.batch_size),
        "--learning_rate",
        str(plan.learning_rate),
        "--num_workers",
        str(plan.num_workers),
        "--report_to",
        "none",
        "--checkpointing_steps",
        "100000",
        "--checkpoints_total_limit",
        "1",
    ]
    architecture = {"teacher": plan.teacher_architecture, "student": plan.student_architecture}
    source = unlabeled_source(data_dir)

    for role in ("teacher", "student"):
        stages.run(
            f"CFA ({role})",
            _train,
            cfa,
            [
                "--teacher",
                str(models / "tiny-clip"),
                "--unlabeled",
                source,
                "--architecture",
                architecture[role],
                "--backbone_checkpoint_path",
                str(imagenet[role]),
                "--num_epochs",
                str(plan.cfa_epochs),
                "--lr_decay_epochs",
                str(plan.cfa_epochs),
                "--teacher_cache",
                str(out_dir / "cache" / role),
                "--output_dir",
                str(models / f"cfa-{role}"),
                *common,
            ],
        )

    def finetune(name: str, role: str, start: list[str], epochs: int):
        return stages.run(
            name,
            _train,
            supervised,
            [
                "--dataset",
                str(data_dir),
                "--architecture",
                architecture[role],
                *start,
                "--num_epochs",
                str(epochs),
                "--lr_decay_epochs",
                str(plan.lr_decay_epoch),
                "--head_dropout",
                str(plan.head_dropout),
                "--output_dir",
                str(models / name),
                *common,
            ],
        )

    finetune("nima-teacher", "teacher", ["--backbone_checkpoint_path", str(imagenet["teacher"])], plan.finetune_epochs)
    finetune("cfa-teacher-scorer", "teacher", ["--model", str(models / "cfa-teacher")], plan.finetune_epochs)
    finetune("nima-student", "student", ["--backbone_checkpoint_path", str(imagenet["student"])], plan.student_epochs)
    finetune("cfa-student-scorer", "student", ["--model", str(models / "cfa-student")], plan.student_epochs)
    distil = [
        "--dataset",
        str(data_dir),
        "--teacher",
        str(models / "cfa-teacher-scorer"),
        "--model",
        str(models / "cfa-student"),
        "--num_epochs",
        str(plan.student_epochs),
        "--lr_decay_epochs",
        str(plan.lr_decay_epoch),
        "--head_dropout",
        str(plan.head_dropout),
        "--beta",
        str(plan.beta),
        *common,
    ]
    stages.run("kd-student", _train, skd, [*distil, "--output_dir", str(models / "kd-student")])
    stages.run(
        "cskd-student",
        _train,
        skd,
        [
            *distil,
            "--unlabeled",
            source,
            "--mu",
            str(plan.mu),
            "--output_dir",
            str(models / "cskd-student"),
        ],
    )

    # The seed papers' baselines, with the same stand-ins: the tiny CLIP prompted, probed and fine-tuned directly,
    # and the student aligned to two teachers (the tiny CLIP and the content classifier), as Hou et al. align to
    # several object classifiers.
    zero_shot = stages.run(
        "CLIP zero-shot", evaluate_zero_shot, models / "tiny-clip", dataset, prompts=ZERO_SHOT_PROMPTS, progress=False
    )
    stages.run(
        "CLIP linear probe",
        fit_linear_probe,
        models / "tiny-clip",
        dataset,
        models / "clip-probe",
        cache_dir=out_dir / "cache" / "probe",
        num_workers=plan.num_workers,
    )
    finetune("clip-finetuned", "student", ["--clip_backbone", str(models / "tiny-clip")], plan.finetune_epochs)
    # The tiny CLIP's targets for this student are those already cached for its single-teacher CFA (same images,
    # same view, same CLIP): the multi-teacher run reuses them and only embeds the corpus with the classifier.
    multi_cache = out_dir / "cache" / "multi-teacher"
    multi_cache.mkdir(parents=True, exist_ok=True)
    if not (multi_cache / "teacher0").exists():
        (multi_cache / "teacher0").symlink_to((out_dir / "cache" / "student").resolve(), target_is_directory=True)
    stages.run(
        "CFA (student, two teachers)",
        _train,
        cfa,
        [
            "--teacher",
            str(models / "tiny-clip"),
            "--teacher",
            f"timm:{plan.teacher_architecture}@{imagenet['teacher']}",
            "--unlabeled",
            source,
            "--architecture",
            plan.student_architecture,
            "--backbone_checkpoint_path",
            str(imagenet["student"]),
            "--num_epochs",
            str(plan.cfa_epochs),
            "--lr_decay_epochs",
            str(plan.cfa_epochs),
            "--teacher_cache",
            str(multi_cache),
            "--output_dir",
            str(models / "multi-teacher-cfa-student"),
            *common,
        ],
    )
    finetune(
        "multi-teacher-cfa-student-scorer",
        "student",
        ["--model", str(models / "multi-teacher-cfa-student")],
        plan.student_epochs,
    )

    # The paper's Fig. 3 diagnostic on the one ViT here: the tiny CLIP's tower as it is (the probe's frozen backbone)
    # and after direct fine-tuning.
    attention_images = [row["image"].convert("RGB") for row in dataset["test"].select(range(32))]
    attention = stages.run(
        "attention diagnostic",
        analyze_models,
        [models / "clip-probe", models / "clip-finetuned"],
        attention_images,
        out_dir / "attention",
        names=["CLIP (frozen)", "CLIP fine-tuned"],
    )

    # The same student architecture with random weights: the floor every trained row must clear.
    untrained = CSKDForAestheticScoring(
        CSKDConfig(architecture=plan.student_architecture, image_size=plan.image_size, head_dropout=plan.head_dropout)
    )
    untrained.save_pretrained(models / "untrained-student")
    CSKDImageProcessor.from_model_config(untrained.config).save_pretrained(models / "untrained-student")

    def evaluate_all():
        rows = {name: evaluate_model(models / folder, dataset["test"], progress=False) for name, folder in ROWS}
        rows[ZERO_SHOT_ROW] = zero_shot
        rows |= {
            name: evaluate_model(models / folder, dataset["test"], progress=False) for name, folder in BASELINE_ROWS
        }
        rows["untrained student"] = evaluate_model(models / "untrained-student", dataset["test"], progress=False)
        return rows

    results = stages.run("evaluation on the test split", evaluate_all)
    test_images = out_dir / "test-images"
    test_images.mkdir(exist_ok=True)
    for row in dataset["test"].select(range(min(50, len(dataset["test"])))):
        row["image"].save(test_images / f"{row['image_id']}.jpg", quality=95)
    plot_interval_error_rates(
        {name: results[name] for name, _ in ROWS}, out_dir / "ier.png", title="SynthAVA test: interval error rate"
    )
    summary = {
        "seed": seed,
        "smoke": smoke,
        "plan": asdict(plan),
        "synthava_train_votes": statistics,
        "tiny_clip_retrieval": retrieval,
        "content_pretraining_accuracy": content_accuracy,
        "attention": attention,
        "results": results,
        "stage_seconds": stages.seconds,
        "total_seconds": round(sum(stages.seconds.values()), 1),
    }
    (out_dir / "results.json").write_text(json.dumps(summary, indent=1))
    table = comparison_table(results, counts=False)
    (out_dir / "results.md").write_text(results_markdown(summary, table))
    print("\n" + table)
    print(f"\nWrote {out_dir / 'results.md'}, results.json, ier.png and the models in {models}.")
    print(f"Try: cskd score {test_images} --model {models / 'cskd-student'}")
    print("SynthAVA is synthetic: these numbers say nothing about real photographs.")
    return summary


def results_markdown(summary: dict, table: str) -> str:
    plan = summary["plan"]
    stages = "\n".join(f"| {name} | {seconds:.0f} |" for name, seconds in summary["stage_seconds"].items())
    retrieval = summary["tiny_clip_retrieval"]
    content = ", ".join(f"{arch} {acc:.2f}" for arch, acc in summary["content_pretraining_accuracy"].items())
    votes = summary["synthava_train_votes"]
    attention = "\n".join(
        f"| {name} | {' / '.join(f'{d:.1f}' for d in result['mean_attention_distance'])} | "
        f"{' / '.join(f'{e:.2f}' for e in result['attention_entropy'])} |"
        for name, result in summary["attention"].items()
    )
    return f"""# CSKD quickstart on SynthAVA (seed {summary["seed"]}{", smoke" if summary["smoke"] else ""})

**SynthAVA is synthetic: these numbers say nothing about real photographs.** They show the method running end to
end: CLIP-based feature alignment (CFA), a fine-tuned teacher, and semi-supervised distillation (SKD) into a student.

Teacher `{plan["teacher_architecture"]}`, student `{plan["student_architecture"]}`, {plan["image_size"]} px;
splits {plan["splits"]}; SKD with mu = {plan["mu"]}, beta = {plan["beta"]}.

## Test split

Rows as the CSKD paper's Tables 1 and 6, then the seed papers' baselines: the tiny CLIP prompted zero-shot, probed
linearly and fine-tuned directly (Hentschel et al., 2022), and the student aligned to two teachers, the tiny CLIP and
the content classifier (Hou et al., 2022), then fine-tuned.

{table}

![interval error rate](ier.png)

## Attention of the tiny CLIP, frozen and fine-tuned directly (the CSKD paper's Fig. 3)

Per layer, on 32 test images (`cskd analyze attention`; plot in `attention/attention.png`):

| tower | mean attention distance (px) per layer | attention entropy (nats) per layer |
|---|---|---|
{attention}

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


__all__ = [
    "BASELINE_ROWS",
    "FULL",
    "ROWS",
    "SMOKE",
    "ZERO_SHOT_ROW",
    "QuickstartPlan",
    "run_quickstart",
]
