"""Training throughput with a live teacher against the teacher cache: CFA (CLIP embeddings) and SKD (distributions).

Random weights, no downloads: CLIP vision towers shaped like ViT-B/16 and ViT-L/14 (transformers' configs), timm
scoring teachers (MobileNetV2, and Swin-Base as in the paper), a MobileNetV2 student, 224 px. Each row times the same
training step (student forward + backward + Adam) with its targets from the live teacher or from a cache lookup; the
cache build itself is timed separately (paid once). SKD's step holds `2 * batch-size` images, B_s labeled and
mu * B_s unlabeled: the live teacher runs on all of them, the cached one on the B_s labeled images only, so one live
row serves every mu. SKD's rows take their steps in turn and report the median, which a machine shared with other
work needs.

    python benchmarks/train_throughput.py [--runs cfa skd] [--batch-size 8] [--steps 3] [--teachers b16 l14]
        [--skd-teachers mobilenetv2_100 swin_base_patch4_window7_224] [--mu 3 15] [--threads 2]
"""

import argparse
import statistics
import time
from functools import partial

import torch
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from cskd_hf import CSKDConfig, CSKDForAestheticScoring, CSKDForFeatureAlignment
from cskd_hf.losses import skd_loss

TEACHERS = {
    "b16": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, patch_size=16),
    "l14": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, patch_size=14),
}


def clip_tower(name: str) -> CLIPVisionModelWithProjection:
    config = CLIPVisionConfig(image_size=224, projection_dim=768, **TEACHERS[name])
    return CLIPVisionModelWithProjection(config).eval().requires_grad_(False)


def time_steps(step, steps: int) -> float:
    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def training_step(model, optimizer, pixels, targets_of):
    """One CFA step with targets from `targets_of()` (the live teacher or the cache)."""

    def step():
        loss = model(pixel_values=pixels, teacher_embeds=targets_of()).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    return step


def cfa_rows(batch_size: int, steps: int, teachers: list[str]) -> list[tuple]:
    """`(row, images a step, seconds a step, speed-up over the live teacher)` for each teacher."""
    rows = []
    pixels = torch.randn(batch_size, 3, 224, 224)
    for name in teachers:
        teacher = clip_tower(name)
        width = teacher.config.hidden_size
        student = CSKDForFeatureAlignment(CSKDConfig(architecture="mobilenetv2_100", projection_dim=width))
        optimizer = torch.optim.Adam(student.parameters(), lr=1e-4)
        cache = torch.randn(10_000, width)
        keys = torch.randint(0, len(cache), (batch_size,))

        def embed(teacher=teacher):
            with torch.no_grad():
                return teacher(pixel_values=pixels).last_hidden_state[:, 0]

        embed_seconds = time_steps(embed, steps)
        live = time_steps(training_step(student, optimizer, pixels, embed), steps)
        cached = time_steps(
            training_step(student, optimizer, pixels, lambda cache=cache, keys=keys: cache[keys]), steps
        )
        rows.append((f"CFA, CLIP {name.upper()} live", batch_size, live, 1.0))
        rows.append((f"CFA, CLIP {name.upper()} cached", batch_size, cached, live / cached))
        rows.append((f"  cache build, CLIP {name.upper()} (once)", batch_size, embed_seconds, float("nan")))
    return rows


def skd_step(student, optimizer, pixels, labels, targets_of):
    """One SKD step (eqs. 3-5) on `pixels`, the labeled ones first, with the teacher's targets from `targets_of()`."""

    def step():
        loss, _, _ = skd_loss(student(pixel_values=pixels).probabilities, labels, targets_of())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    return step


def predictions(teacher, pixels: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return teacher(pixel_values=pixels).probabilities


def time_in_turn(steps_by_row: dict, steps: int) -> dict:
    """Median seconds of each row's step, the rows taking turns (after a warm-up round), so that a load on the machine
    that comes and goes weighs on every row alike."""
    for step in steps_by_row.values():
        step()
    seconds = {row: [] for row in steps_by_row}
    for _ in range(steps):
        for row, step in steps_by_row.items():
            start = time.perf_counter()
            step()
            seconds[row].append(time.perf_counter() - start)
    return {row: statistics.median(times) for row, times in seconds.items()}


def skd_rows(images: int, steps: int, teachers: list[str], mus: list[int]) -> list[tuple]:
    """As `cfa_rows`, SKD steps of `images` images with each teacher (a MobileNetV2 student) and each mu."""
    rows = []
    pixels = torch.randn(images, 3, 224, 224)
    for architecture in teachers:
        teacher = CSKDForAestheticScoring(CSKDConfig(architecture=architecture)).eval().requires_grad_(False)
        student = CSKDForAestheticScoring(CSKDConfig(architecture="mobilenetv2_100"))
        optimizer = torch.optim.Adam(student.parameters(), lr=1e-4)
        cache = torch.softmax(torch.randn(10_000, teacher.config.num_bins), dim=-1)
        keys = torch.randint(0, len(cache), (images,))
        name = f"SKD, teacher {architecture}"

        labels = torch.full((max(1, images // (1 + max(mus))), 10), 0.1)  # any B_s: the live step is the same
        live = f"{name}, live (any mu)"
        steps_by_row = {live: skd_step(student, optimizer, pixels, labels, partial(predictions, teacher, pixels))}
        for mu in mus:
            labeled = max(1, images // (1 + mu))

            def cached_targets(teacher=teacher, labeled=labeled, cache=cache, keys=keys):
                # The live teacher on the labeled images; the unlabeled ones' targets looked up.
                return torch.cat([predictions(teacher, pixels[:labeled]), cache[keys[labeled:]]])

            labels = torch.full((labeled, 10), 0.1)
            row = f"{name}, mu={mu} (B_s={labeled}), cached"
            steps_by_row[row] = skd_step(student, optimizer, pixels, labels, cached_targets)
        build = f"  cache build, {architecture} (once)"
        steps_by_row[build] = partial(predictions, teacher, pixels)
        seconds = time_in_turn(steps_by_row, steps)
        for row, time_per_step in seconds.items():
            speedup = float("nan") if row == build else seconds[live] / time_per_step
            rows.append((row, images, time_per_step, speedup))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--teachers", nargs="+", default=["b16", "l14"], choices=sorted(TEACHERS))
    parser.add_argument("--runs", nargs="+", default=["cfa", "skd"], choices=["cfa", "skd"])
    parser.add_argument(
        "--skd-teachers",
        nargs="+",
        default=["mobilenetv2_100", "swin_base_patch4_window7_224"],
        help="timm architectures of SKD's scoring teachers (the paper's is Swin-Base)",
    )
    parser.add_argument("--mu", type=int, nargs="+", default=[3, 15], help="SKD's unlabeled images per labeled one")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    rows = cfa_rows(args.batch_size, args.steps, args.teachers) if "cfa" in args.runs else []
    if "skd" in args.runs:
        rows += skd_rows(args.batch_size * 2, args.steps, args.skd_teachers, args.mu)
    print(
        f"\nCPU, {args.threads} threads, batch {args.batch_size} (SKD: {args.batch_size * 2}), 224 px, random weights"
    )
    width = max(len(name) for name, *_ in rows)
    print(f"| {'run':<{width}} | {'images/s':>9} | {'steps/s':>8} | {'x live':>7} |")
    print(f"|{'-' * (width + 2)}|{'-' * 11}|{'-' * 10}|{'-' * 9}|")
    for name, images, seconds, speedup in rows:
        ratio = "" if speedup != speedup else f"{speedup:.1f}"
        print(f"| {name:<{width}} | {images / seconds:>9.2f} | {1 / seconds:>8.3f} | {ratio:>7} |")


if __name__ == "__main__":
    main()
