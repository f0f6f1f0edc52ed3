"""CFA training throughput with a live CLIP teacher against the teacher-embedding cache, and SKD's step rate.

Random weights, no downloads: CLIP vision towers shaped like ViT-B/16 and ViT-L/14 (transformers' configs), a
MobileNetV2 student (timm), 224 px. Each row times the same training step (student forward + backward + Adam) with
its targets from the live teacher or from a cache lookup; the cache build itself is timed separately (paid once).

    python benchmarks/train_throughput.py [--batch-size 8] [--steps 3] [--teachers b16 l14] [--threads 2]
"""

import argparse
import time

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
        rows.append((f"CFA, CLIP {name.upper()} live", batch_size / live, 1.0))
        rows.append((f"CFA, CLIP {name.upper()} cached", batch_size / cached, live / cached))
        rows.append((f"  cache build, CLIP {name.upper()} (once)", batch_size / embed_seconds, float("nan")))
    return rows


def skd_rows(batch_size: int, steps: int, mu: int) -> list[tuple]:
    student = CSKDForAestheticScoring(CSKDConfig(architecture="mobilenetv2_100"))
    teacher = CSKDForAestheticScoring(CSKDConfig(architecture="mobilenetv2_100")).eval().requires_grad_(False)
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-4)
    labeled = max(1, batch_size // (1 + mu))
    pixels = torch.randn(labeled * (1 + mu), 3, 224, 224)
    labels = torch.full((labeled, 10), 0.1)

    def step():
        with torch.no_grad():
            pseudo = teacher(pixel_values=pixels).probabilities
        loss, _, _ = skd_loss(student(pixel_values=pixels).probabilities, labels, pseudo)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    seconds = time_steps(step, steps)
    return [(f"SKD MV2->MV2, B_s={labeled}, mu={mu}", len(pixels) / seconds, float("nan"))]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--teachers", nargs="+", default=["b16", "l14"], choices=sorted(TEACHERS))
    parser.add_argument("--mu", type=int, default=3, help="SKD's unlabeled images per labeled one")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    rows = cfa_rows(args.batch_size, args.steps, args.teachers) + skd_rows(args.batch_size * 2, args.steps, args.mu)
    print(f"\nCPU, {args.threads} threads, batch {args.batch_size}, 224 px, random weights")
    print(f"| {'run':<42} | {'images/s':>9} | {'x live':>7} |")
    print(f"|{'-' * 44}|{'-' * 11}|{'-' * 9}|")
    for name, rate, speedup in rows:
        ratio = "" if speedup != speedup else f"{speedup:.1f}"
        print(f"| {name:<42} | {rate:>9.2f} | {ratio:>7} |")


if __name__ == "__main__":
    main()
