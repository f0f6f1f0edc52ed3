"""The seed papers' premises alone, for calibrating SynthAVA (#26): the quickstart's world and stand-ins, then only
the rows that involve no CFA and no SKD, on the validation and the test split.

    python benchmarks/premises.py [--plan default] [--seeds 0 1] [--learning-rates 1e-4 3e-4 1e-3]
        [--out outputs/premises] [--json premises.json]

Per seed: SynthAVA at the plan's sizes, the tiny CLIP, the teacher's content pretraining, the CLIP linear probe and
the content-pretrained linear probe (P1), the NIMA* teacher and the fine-tuned CLIP (P2) at each learning rate asked
for. The fine-tuned rows are read at the learning rate with the best validation SRCC (the test split never chooses
anything); P3 is the plan's split sizes. No CFA, KD or SKD runs, so calibrating the world against this table cannot
tune the paper's claims. With the default plan, about 7 minutes a seed with two learning rates (10 epochs).

SynthAVA is synthetic: these numbers say nothing about real photographs.
"""

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from cskd_hf.evaluation import evaluate_model
from cskd_hf.synthetic.quickstart import (
    MIN_UNLABELED_RATIO,
    PLANS,
    PREMISES,
    Layout,
    RunArguments,
    Stages,
    build_world,
    fit_probes,
    train_in_process,
    train_stand_ins,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning_rates import best_learning_rate  # noqa: E402  (the grid's choice: a NaN never wins)

FINETUNED = {"NIMA* teacher": "nima-teacher", "CLIP fine-tuned": "clip-finetuned"}
PROBES = {"CLIP linear probe": "clip-probe", "Content-pretrained linear probe": "content-probe"}


def run_seed(plan_name: str, seed: int, out: Path, learning_rates: list[float] | None) -> dict:
    """One seed's premise rows: {row: {"validation": srcc, "test": srcc, "learning_rate": lr or None}}, and times."""
    plan = PLANS[plan_name]
    torch.set_num_threads(plan.torch_threads)
    layout = Layout(out / f"seed-{seed}")
    stages = Stages()
    world = build_world(stages, plan, layout, seed)
    train_stand_ins(stages, plan, layout, world, seed, roles=("teacher",))
    fit_probes(stages, plan, layout, world)

    def srcc(folder: Path) -> dict:
        return {
            split: evaluate_model(folder, world.dataset[split], progress=False)["srcc"]
            for split in ("validation", "test")
        }

    rows = {name: srcc(layout.models / folder) | {"learning_rate": None} for name, folder in PROBES.items()}
    for name, folder in FINETUNED.items():
        tried = {}
        for learning_rate in learning_rates or [plan.row_learning_rates.get(folder, plan.learning_rate)]:
            rates = plan.row_learning_rates | {folder: learning_rate}
            runs = RunArguments(replace(plan, row_learning_rates=rates), layout, seed)
            args = (runs.method() | runs.baselines())[folder]
            args.output_dir = str(layout.models / f"{folder}-lr{learning_rate:g}")
            stages.run(f"{folder} (lr {learning_rate:g})", train_in_process, args)
            tried[learning_rate] = srcc(Path(args.output_dir))
        best = best_learning_rate({lr: figures["validation"] for lr, figures in tried.items()})
        rows[name] = tried[best] | {"learning_rate": best, "tried": {f"{lr:g}": v for lr, v in tried.items()}}
    return {"rows": rows, "stage_seconds": stages.seconds, "splits": plan.splits}


def premise_table(seeds: dict[int, dict]) -> str:
    """Each premise row's test SRCC per seed and its mean, then each premise's mean difference and its wins."""
    names = list(PROBES) + list(FINETUNED)
    lines = ["| row | " + " | ".join(f"seed {s}" for s in seeds) + " | mean |", "|---" * (len(seeds) + 2) + "|"]
    for name in names:
        values = [result["rows"][name]["test"] for result in seeds.values()]
        lrs = [result["rows"][name]["learning_rate"] for result in seeds.values()]
        cells = [f"{v:.3f}" + (f" (lr {lr:g})" if lr else "") for v, lr in zip(values, lrs)]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {statistics.mean(values):.3f} |")
    lines.append("")
    for premise, better, worse, margin in PREMISES:
        differences = [r["rows"][better]["test"] - r["rows"][worse]["test"] for r in seeds.values()]
        wins = sum(d > -margin for d in differences)
        shortfall = f" - {margin:g}" if margin else ""
        lines.append(
            f"{premise}: {better} > {worse}{shortfall}: mean difference {statistics.mean(differences):+.3f}, "
            f"met on {wins}/{len(differences)} seeds"
        )
    splits = next(iter(seeds.values()))["splits"]
    ratio = splits["unlabeled"] / splits["train"]
    lines.append(
        f"P3: unlabeled / train = {splits['unlabeled']} / {splits['train']} = {ratio:.1f}x "
        f"({'met' if ratio >= MIN_UNLABELED_RATIO else 'not met'})"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plan", default="default", choices=sorted(PLANS), help="the quickstart plan's world")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="the seeds to run")
    parser.add_argument(
        "--learning-rates",
        type=float,
        nargs="+",
        default=None,
        help="the fine-tuned rows' grid (default: each row's rate in the plan, else the plan's learning rate)",
    )
    parser.add_argument("--out", default="outputs/premises", help="each seed's run goes to OUT/seed-N")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    seeds = {}
    for seed in args.seeds:
        start = time.perf_counter()
        seeds[seed] = run_seed(args.plan, seed, Path(args.out), args.learning_rates)
        print(
            f"seed {seed}: {time.perf_counter() - start:.0f} s; stages {seeds[seed]['stage_seconds']}", file=sys.stderr
        )
    print(premise_table(seeds))
    if args.json:
        Path(args.json).write_text(json.dumps({str(s): r for s, r in seeds.items()}, indent=1))


if __name__ == "__main__":
    main()
