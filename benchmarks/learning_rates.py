"""One learning-rate grid for every fine-tuned row of the quickstart, chosen on the validation split (#26, fair
tuning): run once after the world is calibrated, its choice recorded in the plan's `row_learning_rates`.

    python benchmarks/learning_rates.py [--plan default] [--seed 0] [--learning-rates 1e-4 3e-4 1e-3]
        [--out outputs/learning-rates] [--json learning-rates.json]

One seed's world and stand-ins at the plan's sizes, then every trainer run of `cskd quickstart --full` in its order,
but for the variants and the Fig. 3 ViT: the CFA runs (alignment, no fine-tuned row) at the plan's rate, each
fine-tuned row once per rate of the grid. A row's choice is the rate of its best validation SRCC, and its model at
that rate is the one later runs start from (KD and SKD distil the chosen CFA teacher). A variant of the recipe takes
its row's rate (`VARIANT_OF`), so it is not trained here. No choice reads the test split, so the grid cannot tune
the report. Prints each row's validation SRCC per rate and the `row_learning_rates` to record in the plan.

SynthAVA is synthetic: these numbers say nothing about real photographs.
"""

import argparse
import json
import math
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from cskd_hf.evaluation import evaluate_model
from cskd_hf.synthetic.quickstart import (
    PLANS,
    VARIANT_OF,
    Layout,
    Stages,
    build_world,
    train_in_process,
    train_stand_ins,
    trainer_arguments,
    tuned_rows,
)


def best_learning_rate(validation_srcc: dict[float, float]) -> float:
    """The rate of the best validation SRCC; a NaN (a run that diverged) never wins."""
    return max(
        validation_srcc, key=lambda rate: -math.inf if math.isnan(validation_srcc[rate]) else validation_srcc[rate]
    )


def run_grid(plan_name: str, seed: int, out: Path, learning_rates: list[float]) -> dict:
    """{"rows": {folder: {rate: validation SRCC}}, "chosen": {folder: rate}, "stage_seconds": ...} for one seed."""
    plan = replace(PLANS[plan_name], full=True)  # every fine-tuned row, `--full`'s baselines too
    torch.set_num_threads(plan.torch_threads)
    layout = Layout(out)
    stages = Stages()
    world = build_world(stages, plan, layout, seed)
    train_stand_ins(stages, plan, layout, world, seed, roles=("teacher", "student"))
    tuned = set(tuned_rows())
    rows, chosen = {}, {}
    for name, args in trainer_arguments(plan, out, seed).items():
        folder = Path(args.output_dir)
        if folder.name in VARIANT_OF or name == "CFA (ViT)":
            continue
        if folder.name not in tuned:
            stages.run(name, train_in_process, args)
            continue
        tried = {}
        for learning_rate in learning_rates:
            candidate = folder.with_name(f"{folder.name}-lr{learning_rate:g}")
            stages.run(
                f"{name} (lr {learning_rate:g})",
                train_in_process,
                replace(args, learning_rate=learning_rate, output_dir=str(candidate)),
            )
            tried[learning_rate] = evaluate_model(candidate, world.dataset["validation"], progress=False)["srcc"]
        chosen[folder.name] = best_learning_rate(tried)
        shutil.copytree(folder.with_name(f"{folder.name}-lr{chosen[folder.name]:g}"), folder, dirs_exist_ok=True)
        rows[folder.name] = tried
    return {"rows": rows, "chosen": chosen, "stage_seconds": stages.seconds, "splits": plan.splits}


def grid_table(result: dict) -> str:
    """Each row's validation SRCC per rate, its chosen rate marked, and the `row_learning_rates` to record."""
    rates = sorted({rate for tried in result["rows"].values() for rate in tried})
    lines = [
        "| row | " + " | ".join(f"lr {rate:g}" for rate in rates) + " | chosen |",
        "|---" * (len(rates) + 2) + "|",
    ]
    for folder, tried in result["rows"].items():
        cells = [
            "–"
            if rate not in tried
            else f"**{tried[rate]:.3f}**"
            if rate == result["chosen"][folder]
            else f"{tried[rate]:.3f}"
            for rate in rates
        ]
        lines.append(f"| {folder} | " + " | ".join(cells) + f" | {result['chosen'][folder]:g} |")
    recorded = ", ".join(f'"{folder}": {rate:g}' for folder, rate in result["chosen"].items())
    return "\n".join([*lines, "", f"row_learning_rates={{{recorded}}}"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--plan", default="default", choices=sorted(PLANS), help="the quickstart plan's world and rows"
    )
    parser.add_argument("--seed", type=int, default=0, help="the seed of the world and of every run")
    parser.add_argument(
        "--learning-rates", type=float, nargs="+", default=[1e-4, 3e-4, 1e-3], help="the grid, the same for every row"
    )
    parser.add_argument("--out", default="outputs/learning-rates", help="the run's folder")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    result = run_grid(args.plan, args.seed, Path(args.out), args.learning_rates)
    print(f"{time.perf_counter() - start:.0f} s; stages {result['stage_seconds']}", file=sys.stderr)
    print(grid_table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result | {"seed": args.seed, "plan": args.plan}, indent=1))


if __name__ == "__main__":
    main()
