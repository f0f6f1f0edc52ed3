"""The paper's full recipe in hours and GPU-hours per phase on 1, 4 and 8 GPUs, from measured rates where there are
some, naming the stage that bounds each phase and saying which figures are measured and which are not.

    python benchmarks/recipe_cost.py [--gpu-check gpu_check.json] [--loader loader_throughput.json]
        [--cores-per-gpu 8] [--decoding full|draft|shards] [--json recipe_cost.json]

The recipe (shared/method.md; docs/training.md): CFA aligns Swin-Base and MobileNetV2 each to CLIP ViT-L/14 on
ImageNet-1k + OpenImages (1.2M + 1.9M unlabeled images), the Swin-Base teacher is fine-tuned on AVA (237,623 training
images), and SKD distils it into MobileNetV2 with mu = 15 (each step: B labeled + 15 B unlabeled images); 16 epochs
each, 224 px. Beside the paper's live-teacher CFA, the teacher-cache variant (`--teacher_cache`): CLIP embeds every
image once, and both CFA runs train from the cache. Validation passes (2,000 images an epoch) are left out.

Each phase has three stages: decode (the input pipeline on the GPU's CPU cores), teacher (the frozen teacher's
forward) and student (the trained model's step: forward, backward, Adam). A GPU runs the teacher and the student one
after the other, at 1 / (1/teacher + 1/student) images/s; the cores decode beside it. The phase runs at the smaller of
the two rates, and is bound by decode, or by whichever of teacher and student takes more of the GPU's time.

Where each rate comes from (printed with the tables; M, D, X, A in the cells):
- M, measured: a row of gpu_check.json (`benchmarks/gpu_check.py` on a GPU) or of loader_throughput.json
  (`benchmarks/loader_throughput.py`: per core, CPU time, 1 worker).
- D, derived from measured rows: CLIP ViT-L/14's forward = the CFA step with the live teacher minus the step with
  the cached one; Swin-Base's forward = the SKD step minus the MobileNetV2 step (the CFA cached step's, at its batch).
- X, extrapolated: Swin-Base's training step = its forward / 3 (backward about twice the forward; timm's published
  train/inference rates for Swin-Base give 1/3.1); decoding with N cores from the 1-core figures, every worker reading
  the whole stream (see loader_throughput.py); and any number of GPUs: every rate x GPUs (linear scaling, which
  leaves GPU-hours unchanged), never measured here.
- A, assumed: GPU rates without gpu_check.json, from timm's published benchmarks on an RTX 3090 with AMP
  (results/benchmark-infer-amp-nchw-pt240-cu124-rtx3090.csv: vit_large_patch14_clip_224 359.7 img/s,
  swin_base_patch4_window7_224 877.4; results/benchmark-train-amp-nchw-pt112-cu113-rtx3090.csv: swin_base 279.7,
  mobilenetv2_100 1832.1); per-core decoding without loader_throughput.json, from its run on the 2-core development
  VM (`--assumed-decode`). Override any with the `--assumed-*` options.
"""

import argparse
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

UNLABELED = {"ImageNet-1k": 1_200_000, "OpenImages": 1_900_000}  # method.md: ~3M images in all
AVA_TRAIN = 237_623
EPOCHS = 16
MU = 15
# The loader benchmark's row standing in for each corpus's photos (ImageNet's are smaller than AVA-like ones).
LOADER_ROW = {"ImageNet-1k": "AVA-like", "OpenImages": "OpenImages-like", "AVA": "AVA-like"}
SHARD_ROW = "256-px shards"
TAGS = {"measured": "M", "derived": "D", "extrapolated": "X", "assumed": "A"}
# Weakest first: a figure computed from several is as good as its weakest part.
STRENGTH = ("assumed", "extrapolated", "derived", "measured")


@dataclass(frozen=True)
class Rate:
    images_per_second: float
    provenance: str  # one of TAGS
    basis: str  # where the figure comes from, in words


@dataclass(frozen=True)
class Phase:
    name: str
    recipe: str  # "paper" (live teacher), "cache" (teacher-cache variant) or "both"
    images: int
    data: dict[str, float]  # corpus -> share of the images
    teacher: str | None  # a key of the GPU rates
    student: str | None


def phases(epochs: int, mu: int) -> list[Phase]:
    unlabeled = sum(UNLABELED.values())
    mix = {corpus: count / unlabeled for corpus, count in UNLABELED.items()}
    return [
        Phase("CFA Swin-Base <- CLIP ViT-L/14, live teacher", "paper", epochs * unlabeled, mix, "clip", "swin_train"),
        Phase("CFA MobileNetV2 <- CLIP ViT-L/14, live teacher", "paper", epochs * unlabeled, mix, "clip", "mv2_train"),
        Phase("CLIP ViT-L/14 teacher cache (once, for both CFA runs)", "cache", unlabeled, mix, "clip", None),
        Phase("CFA Swin-Base, cached teacher", "cache", epochs * unlabeled, mix, None, "swin_train"),
        Phase("CFA MobileNetV2, cached teacher", "cache", epochs * unlabeled, mix, None, "mv2_train"),
        Phase("Fine-tune the Swin-Base teacher on AVA", "both", epochs * AVA_TRAIN, {"AVA": 1.0}, None, "swin_train"),
        Phase(
            f"SKD Swin-Base -> MobileNetV2, mu = {mu}",
            "both",
            epochs * AVA_TRAIN * (1 + mu),
            {"AVA": 1 / (1 + mu), **{corpus: share * mu / (1 + mu) for corpus, share in mix.items()}},
            "swin_forward",
            "mv2_train",
        ),
    ]


def gpu_check_row(report: dict, prefix: str, precision: str) -> float:
    """images/s of the gpu_check row `<prefix>..., <precision>`."""
    for row in report["rows"]:
        if row["row"].startswith(prefix) and row["row"].endswith(f", {precision}"):
            return row["images/s"]
    names = [row["row"] for row in report["rows"]]
    raise SystemExit(f"gpu_check.json has no row '{prefix}..., {precision}'; its rows: {names}")


def without(rate: float, part: float) -> float | None:
    """The rate of the rest of a step that runs at `rate` and includes a part running at `part`; None when the
    measurements leave nothing (noise, or a part measured at another batch size)."""
    rest = 1 / rate - 1 / part
    return 1 / rest if rest > 0 else None


def gpu_rates(report: dict | None, precision: str, assumed: dict[str, float]) -> dict[str, Rate]:
    """Teacher and student rates on one GPU: measured or derived from gpu_check.json, else assumed."""
    timm = "timm's published RTX 3090 AMP benchmark"
    rates = {
        "clip": Rate(assumed["clip"], "assumed", f"CLIP ViT-L/14 forward, {timm}"),
        "swin_forward": Rate(assumed["swin_forward"], "assumed", f"Swin-Base forward, {timm}"),
        "swin_train": Rate(assumed["swin_train"], "assumed", f"Swin-Base training step, {timm}"),
        "mv2_train": Rate(assumed["mv2_train"], "assumed", f"MobileNetV2 training step, {timm}"),
    }
    if report is None:
        return rates
    device = report.get("device", "the GPU")
    live = gpu_check_row(report, "CFA, live teacher", precision)
    cached = gpu_check_row(report, "CFA, cached teacher", precision)
    skd = gpu_check_row(report, "SKD, mu = ", precision)
    rates["mv2_train"] = Rate(cached, "measured", f"CFA step, cached teacher, {precision}, {device}")
    unresolved = "; gpu_check's rows leave it no time (noise, or batch sizes), so it stays assumed"
    clip = without(live, cached)
    if clip is not None:
        rates["clip"] = Rate(clip, "derived", f"CFA step live minus cached, {precision}, {device}")
    else:
        rates["clip"] = replace(rates["clip"], basis=rates["clip"].basis + unresolved)
    swin = without(skd, cached)
    if swin is not None:
        rates["swin_forward"] = Rate(swin, "derived", f"SKD step minus MobileNetV2 step, {precision}, {device}")
        rates["swin_train"] = Rate(swin / 3, "extrapolated", "Swin-Base forward (derived) / 3")
    else:
        rates["swin_forward"] = replace(rates["swin_forward"], basis=rates["swin_forward"].basis + unresolved)
    return rates


def per_core_costs(loader: dict | None, decoding: str, assumed: dict[str, float]) -> dict[str, dict]:
    """Per corpus, CPU ms per image of one worker: `base` (all but reading the stream) and `stream` (paid by each
    worker, as each reads the whole stream), with provenance."""
    costs = {}
    for corpus, row_name in LOADER_ROW.items():
        name = SHARD_ROW if decoding == "shards" else row_name
        if loader is None:
            cost = {"base": 1e3 / assumed[name], "stream": 0.0, "provenance": "assumed"}
            costs[corpus] = cost | {"basis": f"{name}: {assumed[name]:.0f} img/s per core (assumed)"}
            continue
        draft = None if decoding == "shards" else decoding == "draft"
        candidates = [
            row
            for row in loader["rows"]
            if row["source"].startswith(name) and row["draft"] == draft and row["cores"] == 1
        ]
        if not candidates:
            raise SystemExit(f"loader_throughput.json has no 1-core row for {name} with draft {draft}")
        row = candidates[0]
        stream = row["ms_stream"]
        costs[corpus] = {
            "base": row["cpu ms per image"] - stream,
            "stream": stream,
            "provenance": "measured",
            "basis": f"{row['source']}, draft {draft}: {row['cpu ms per image']:.2f} CPU ms/img, of which "
            f"{stream:.2f} reading the stream",
        }
    return costs


def decode_rate(phase: Phase, costs: dict[str, dict], cores: int) -> Rate:
    """Images/s that `cores` workers decode for the phase's mix of corpora (each worker reads the whole stream)."""
    ms_per_image = sum(share * (costs[c]["base"] + cores * costs[c]["stream"]) for c, share in phase.data.items())
    per_core = min((costs[c]["provenance"] for c in phase.data), key=STRENGTH.index)
    if cores == 1:
        return Rate(1e3 / ms_per_image, per_core, f"1 core, {per_core}")
    provenance = "assumed" if per_core == "assumed" else "extrapolated"
    return Rate(1e3 * cores / ms_per_image, provenance, f"per core {per_core}, x {cores} cores extrapolated")


def phase_cost(phase: Phase, gpu: dict[str, Rate], decode: Rate, gpus_list: list[int]) -> dict:
    """The phase's stage rates on one GPU, its bound, and its hours and GPU-hours for each number of GPUs."""
    stages = {"decode": decode}
    if phase.teacher:
        stages["teacher"] = gpu[phase.teacher]
    if phase.student:
        stages["student"] = gpu[phase.student]
    on_gpu = [name for name in ("teacher", "student") if name in stages]
    gpu_rate = 1 / sum(1 / stages[name].images_per_second for name in on_gpu)
    rate = min(decode.images_per_second, gpu_rate)
    if decode.images_per_second <= gpu_rate:
        bound = "decode"
    else:  # the slower of the GPU's stages takes more of each step
        bound = min(on_gpu, key=lambda name: stages[name].images_per_second)
    hours = {gpus: phase.images / (rate * gpus) / 3600 for gpus in gpus_list}
    provenance = min((stage.provenance for stage in stages.values()), key=STRENGTH.index)
    return {
        "phase": phase.name,
        "recipe": phase.recipe,
        "images": phase.images,
        "stages": {name: asdict(stage) for name, stage in stages.items()},
        "gpu images/s": gpu_rate,
        "images/s": rate,
        "bound by": bound,
        "provenance": provenance,
        "hours": hours,
        "gpu hours": {gpus: hours[gpus] * gpus for gpus in gpus_list},
    }


def cell(stage: dict | None) -> str:
    return "–" if stage is None else f"{stage['images_per_second']:,.0f} {TAGS[stage['provenance']]}"


def format_tables(costs: list[dict], gpus_list: list[int], notes: list[str]) -> str:
    lines = [
        "Stage rates on one GPU (images/s; M measured, D derived from measured, X extrapolated, A assumed):",
        "",
        "| phase | decode | teacher | student | GPU (teacher + student) | overall | bound by |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for cost in costs:
        stages = cost["stages"]
        lines.append(
            f"| {cost['phase']} | {cell(stages['decode'])} | {cell(stages.get('teacher'))} | "
            f"{cell(stages.get('student'))} | {cost['gpu images/s']:,.0f} | {cost['images/s']:,.0f} | "
            f"{cost['bound by']} |"
        )
    header = " | ".join(f"hours, {gpus} GPU{'s' if gpus > 1 else ''}" for gpus in gpus_list)
    lines += [
        "",
        f"Cost ({', '.join(str(gpus) for gpus in gpus_list[1:])} GPUs: extrapolated, linear scaling, so GPU-hours "
        "are the same for any number of GPUs; in brackets, the weakest provenance of the rates behind them):",
        "",
        f"| phase | images | bound by | {header} | GPU-hours |",
        "|---|---:|---|" + "---:|" * len(gpus_list) + "---:|",
    ]
    for cost in costs:
        hours = " | ".join(f"{cost['hours'][gpus]:,.1f}" for gpus in gpus_list)
        gpu_hours = cost["gpu hours"][gpus_list[0]]
        lines.append(
            f"| {cost['phase']} | {cost['images']:,} | {cost['bound by']} | {hours} | {gpu_hours:,.0f} "
            f"({cost['provenance']}) |"
        )
    for recipe, name in (("paper", "the paper's recipe (live teacher)"), ("cache", "with the teacher cache")):
        chosen = [cost for cost in costs if cost["recipe"] in (recipe, "both")]
        hours = " | ".join(f"**{sum(cost['hours'][gpus] for cost in chosen):,.1f}**" for gpus in gpus_list)
        gpu_hours = sum(cost["gpu hours"][gpus_list[0]] for cost in chosen)
        lines.append(f"| **total, {name}** | | | {hours} | **{gpu_hours:,.0f}** |")
    return "\n".join(lines + ["", *notes])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu-check", help="gpu_check.py --json output (measured GPU rates); without it: assumed")
    parser.add_argument("--precision", default="bf16 + channels-last", help="the gpu_check rows to use")
    parser.add_argument("--loader", help="loader_throughput.py --json output (measured per-core decoding)")
    parser.add_argument("--decoding", choices=("full", "draft", "shards"), default="full",
                        help="full JPEG decoding (the trainers' default), draft, or 256-px shards")  # fmt: skip
    parser.add_argument("--cores-per-gpu", type=int, default=8, help="DataLoader workers (CPU cores) per GPU")
    parser.add_argument("--gpus", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--mu", type=int, default=MU)
    parser.add_argument("--assumed-clip", type=float, default=359.7, help="CLIP ViT-L/14 forward, img/s")
    parser.add_argument("--assumed-swin-forward", type=float, default=877.4, help="Swin-Base forward, img/s")
    parser.add_argument("--assumed-swin-train", type=float, default=279.7, help="Swin-Base training step, img/s")
    parser.add_argument("--assumed-mv2-train", type=float, default=1832.1, help="MobileNetV2 training step, img/s")
    parser.add_argument("--assumed-decode", type=float, nargs=3, default=[190.0, 100.0, 230.0],
                        metavar=("AVA_LIKE", "OPENIMAGES_LIKE", "SHARDS"),
                        help="per-core img/s without --loader")  # fmt: skip
    parser.add_argument("--json", help="also write the phases here")
    args = parser.parse_args()
    if 1 not in args.gpus:
        args.gpus = [1, *args.gpus]

    report = json.loads(Path(args.gpu_check).read_text()) if args.gpu_check else None
    loader = json.loads(Path(args.loader).read_text()) if args.loader else None
    assumed_gpu = {
        "clip": args.assumed_clip,
        "swin_forward": args.assumed_swin_forward,
        "swin_train": args.assumed_swin_train,
        "mv2_train": args.assumed_mv2_train,
    }
    assumed_decode = dict(zip(("AVA-like", "OpenImages-like", SHARD_ROW), args.assumed_decode, strict=True))
    gpu = gpu_rates(report, args.precision, assumed_gpu)
    per_core = per_core_costs(loader, args.decoding, assumed_decode)
    costs = [
        phase_cost(phase, gpu, decode_rate(phase, per_core, args.cores_per_gpu), args.gpus)
        for phase in phases(args.epochs, args.mu)
    ]
    notes = [
        f"Inputs: GPU rates {'from ' + args.gpu_check if report else 'ASSUMED (no gpu_check.json)'}; decoding "
        f"'{args.decoding}', {'from ' + args.loader if loader else 'ASSUMED (no loader_throughput.json)'}, "
        f"{args.cores_per_gpu} cores per GPU; {args.epochs} epochs, mu = {args.mu}.",
        *(
            f"- {key}: {rate.images_per_second:,.1f} img/s, {rate.provenance} ({rate.basis})"
            for key, rate in gpu.items()
        ),
        *(f"- decode, {corpus}: {cost['basis']}" for corpus, cost in per_core.items()),
    ]
    if report and report.get("device") == "CPU":
        notes.append(
            "- gpu_check.json was measured on a CPU (`gpu_check.py --smoke`, tiny models): not the recipe's rates"
        )
    if report:
        notes += [
            f"- gpu_check's input pipeline, measured on the GPU host: {row['row']}, {row['images/s']:,.0f} img/s"
            for row in report["rows"]
            if row["row"].startswith("input pipeline")
        ]
    print(format_tables(costs, args.gpus, notes))
    if args.json:
        inputs = {"gpu_check": args.gpu_check, "loader": args.loader, "decoding": args.decoding,
                  "cores_per_gpu": args.cores_per_gpu, "epochs": args.epochs, "mu": args.mu}  # fmt: skip
        rates = {key: asdict(rate) for key, rate in gpu.items()}
        Path(args.json).write_text(json.dumps({"inputs": inputs, "gpu rates": rates, "phases": costs}, indent=1))


if __name__ == "__main__":
    main()
