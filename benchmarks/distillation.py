"""Why KD does or does not beat the CFA student it starts from (#26, item 4), read from finished quickstart runs.

    python benchmarks/distillation.py outputs/seeds-default/seed-0 [outputs/seeds-default/seed-1 ...]
        [--unlabeled-images 5000] [--kd-betas 0 1 15] [--kd-out DIR] [--json distillation.json]

KD and SKD start from the same CFA student and learn from the same CFA teacher's scorer (the paper's Table 6: KD is
SKD without the unlabeled images); the CFA student's scorer is fine-tuned from it on the labels alone. Two tables per
run:

- **Loss terms per epoch** (from each run's last checkpoint): the supervised EMD, the distillation EMD, the share of
  β · distillation in the loss, and the validation SRCC, for the CFA student's scorer, KD and SKD.
- **What each target knows, on the images it is used on**: SRCC with SynthAVA's latent score (the noise-free truth
  behind the votes, which no model sees) of the labels' mean score and of the teacher's predictions, on the train
  images (KD's and SKD's labeled share), on the unlabeled images (SKD's other share; the first `--unlabeled-images`)
  and on the test images; and the teacher's SRCC with the labels themselves, on train against test: how far the
  teacher reproduces the train labels it was fitted to, noise included. The teacher scores each image's centre view,
  as SKD's cached targets are; KD's live teacher scores the student's random crop and flip of it.

With `--kd-betas`, KD is trained again at each weight β of its distillation term, otherwise as the quickstart trains
it, into `kd-student-beta-B` in the run's models folder (or `--kd-out DIR/<run folder>/`; a model older than the
run's results.json is trained again), and read on validation and test. β = 15 is the quickstart's own KD again (the
same figures, training being deterministic); β = 0 trains on the labels alone in the distillation trainer, the CFA
student's recipe where the two rows' learning rates agree (they do in the default plan), though not the same random
draws. Nothing is chosen from these figures.

When the teacher knows no more about the train images' latent score than their labels do, KD's distillation term
repeats the labels at β = 15 times their weight and can add nothing; SKD's unlabeled images are where the teacher's
knowledge is new to the student. About 30 s a run on 2 cores, and about 40 s per β. SynthAVA is synthetic: these
numbers say nothing about real photographs.
"""

import argparse
import json
import shutil
import sys
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from cskd_hf.data.prepare import load_labeled
from cskd_hf.evaluation import evaluate_model, predict_dataset
from cskd_hf.inference.scoring import load_scorer
from cskd_hf.synthetic.quickstart import ROWS, Layout, QuickstartPlan, RunArguments, train_in_process
from cskd_hf.training.common import complete_checkpoints

STUDENTS = {row: folder for row, folder in ROWS if row in ("CFA student", "KD student", "CSKD student (SKD)")}
TEACHER_ROW = "CFA teacher"
TEACHER = dict(ROWS)[TEACHER_ROW]
SPLITS = ("train", "unlabeled", "test")


def epoch_history(model_folder: Path) -> list[dict]:
    """The per-epoch history a trainer kept in its last complete checkpoint under `model_folder`."""
    checkpoints = complete_checkpoints(model_folder / "checkpoints")
    if not checkpoints:
        raise FileNotFoundError(f"{model_folder}: no complete checkpoint to read the loss history from")
    return json.loads((checkpoints[-1] / "trainer_state_rank0.json").read_text())["history"]


def loss_terms(history: list[dict], beta: float) -> list[dict]:
    """Per epoch: the supervised and the distillation EMD, the share of `beta` · distillation in their weighted sum
    (0 without distillation) and the validation SRCC."""
    rows = []
    for entry in history:
        # Without a distillation term the trainer logs the loss alone: then the loss is the supervised term.
        supervised = entry.get("train/epoch_loss_supervised")
        if supervised is None:
            supervised = entry["train/epoch_loss"]
        distillation = entry.get("train/epoch_loss_distillation")
        weighted = beta * distillation if distillation is not None else 0.0
        rows.append(
            {
                "supervised": supervised,
                "distillation": distillation,
                "distillation_share": weighted / (supervised + weighted),
                "validation_srcc": entry.get("validation/srcc"),
            }
        )
    return rows


def srcc(a: np.ndarray, b: np.ndarray) -> float:
    return float(stats.spearmanr(a, b).statistic)


def target_quality(run: Path, unlabeled_images: int) -> dict:
    """SRCC with the latent score of the labels and of the teacher's predictions on each split the students learn from
    (and on test), and the teacher's SRCC with the labels."""
    dataset = load_labeled(run / "synthava")
    model, image_processor = load_scorer(run / "models" / TEACHER, device="cpu")
    quality = {}
    for split in SPLITS:
        images = dataset[split]
        if split == "unlabeled":
            images = images.select(range(min(unlabeled_images, len(images))))
        predicted, labels = predict_dataset(model, image_processor, images, progress=False)
        latent = np.asarray(images["latent_score"])
        if len(predicted) != len(latent):
            raise ValueError(f"{run}: {len(latent) - len(predicted)} unreadable {split} images; cannot pair them")
        quality[split] = {
            "images": len(latent),
            "labels_vs_latent": srcc(labels, latent),
            "teacher_vs_latent": srcc(predicted, latent),
            "teacher_vs_labels": srcc(predicted, labels),
        }
    return quality


def run_plan(run: Path, results: dict) -> QuickstartPlan:
    """The plan a run recorded, refused when its fields are not today's (a run of older code)."""
    expected, recorded = {field.name for field in fields(QuickstartPlan)}, set(results["plan"])
    if expected != recorded:
        raise ValueError(
            f"{run / 'results.json'}: its plan is not a QuickstartPlan of this code (missing: "
            f"{sorted(expected - recorded)}, unknown: {sorted(recorded - expected)}); run the quickstart again"
        )
    return QuickstartPlan(**results["plan"])


def kd_at_betas(run: Path, results: dict, betas: list[float], out: Path) -> dict[str, dict]:
    """KD trained again into `out` at each distillation weight of `betas`, otherwise as the run trained it; SRCC on
    validation and test, by β."""
    plan = run_plan(run, results)
    torch.set_num_threads(plan.torch_threads)
    dataset = load_labeled(run / "synthava")
    figures = {}
    for beta in betas:
        folder = out / f"kd-student-beta-{beta:g}"
        weights = folder / "model.safetensors"
        if not weights.exists() or weights.stat().st_mtime < (run / "results.json").stat().st_mtime:
            shutil.rmtree(folder, ignore_errors=True)  # none yet, or one trained before the run it belongs to
            kd = RunArguments(plan, Layout(run), results["seed"]).distil("kd-student")
            train_in_process(replace(kd, beta=beta, output_dir=str(folder)))
        figures[f"{beta:g}"] = {
            split: evaluate_model(folder, dataset[split], progress=False)["srcc"] for split in ("validation", "test")
        }
    return figures


def diagnose(
    run: Path, unlabeled_images: int, kd_betas: list[float] | None = None, kd_out: Path | None = None
) -> dict:
    """Both tables' figures for one finished run, and KD at `kd_betas` (into `kd_out`, by default the run's models)."""
    results = json.loads((run / "results.json").read_text())
    beta = results["plan"]["beta"]
    return {
        "seed": results.get("seed"),
        "beta": beta,
        "losses": {row: loss_terms(epoch_history(run / "models" / folder), beta) for row, folder in STUDENTS.items()},
        "targets": target_quality(run, unlabeled_images),
        "kd_at_betas": kd_at_betas(run, results, kd_betas, kd_out or run / "models") if kd_betas else {},
        "test_srcc": {row: results["results"][row]["srcc"] for row in (TEACHER_ROW, *STUDENTS)},
    }


def cell(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def losses_table(diagnosis: dict) -> str:
    lines = [
        "| row | epoch | supervised EMD | distillation EMD | β · distillation share | validation SRCC |",
        "|---|---|---|---|---|---|",
    ]
    for row, epochs in diagnosis["losses"].items():
        for number, epoch in enumerate(epochs, start=1):
            lines.append(
                f"| {row} | {number} | {epoch['supervised']:.4f} | {cell(epoch['distillation'], 4)} | "
                f"{epoch['distillation_share']:.0%} | {cell(epoch['validation_srcc'])} |"
            )
    return "\n".join(lines)


def targets_table(diagnosis: dict) -> str:
    lines = [
        "| images | n | labels vs latent | teacher vs latent | teacher vs labels |",
        "|---|---|---|---|---|",
    ]
    for split, quality in diagnosis["targets"].items():
        lines.append(
            f"| {split} | {quality['images']:,} | {quality['labels_vs_latent']:.3f} | "
            f"{quality['teacher_vs_latent']:.3f} | {quality['teacher_vs_labels']:.3f} |"
        )
    return "\n".join(lines)


def betas_table(diagnosis: dict) -> str:
    lines = ["| KD, β | validation SRCC | test SRCC |", "|---|---|---|"]
    for beta, srcc_of in diagnosis["kd_at_betas"].items():
        lines.append(f"| {beta} | {srcc_of['validation']:.3f} | {srcc_of['test']:.3f} |")
    return "\n".join(lines)


def report(diagnoses: dict[str, dict]) -> str:
    sections = []
    for run, diagnosis in diagnoses.items():
        tests = ", ".join(f"{row} {value:.3f}" for row, value in diagnosis["test_srcc"].items())
        sections += [
            f"## {run} (seed {diagnosis['seed']}, β = {diagnosis['beta']:g})",
            f"Test SRCC: {tests}.",
            "",
            losses_table(diagnosis),
            "",
            targets_table(diagnosis),
            "",
            *([betas_table(diagnosis), ""] if diagnosis["kd_at_betas"] else []),
        ]
    return "\n".join(sections)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="quickstart output folders (OUT of `--out OUT`)")
    parser.add_argument("--unlabeled-images", type=int, default=5000, help="unlabeled images the teacher scores")
    parser.add_argument("--kd-betas", type=float, nargs="+", help="train KD again at these distillation weights")
    parser.add_argument(
        "--kd-out", type=Path, help="KD at --kd-betas goes to KD_OUT/<run folder name>/ (default: the run's models)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    missing = [str(run) for run in args.runs if not (run / "results.json").exists()]
    if missing:
        sys.exit(f"not a finished quickstart run (no results.json): {', '.join(missing)}")
    diagnoses = {
        str(run): diagnose(run, args.unlabeled_images, args.kd_betas, args.kd_out / run.name if args.kd_out else None)
        for run in args.runs
    }
    print(report(diagnoses))
    if args.json:
        args.json.write_text(json.dumps(diagnoses, indent=2) + "\n")


if __name__ == "__main__":
    main()
