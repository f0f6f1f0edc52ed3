"""One command on one GPU: what the paper's recipe costs per step, and whether the input pipeline keeps up.

    python benchmarks/gpu_check.py [--json gpu_check.json]     # on a GPU machine, under 10 minutes
    python benchmarks/gpu_check.py --smoke                     # tiny models on the CPU: checks the script runs

Rows (random weights, generated images, no downloads):
- CFA training step, MobileNetV2 student at 224 px, against a teacher the size of CLIP ViT-L/14 (transformers'
  `CLIPVisionModelWithProjection` with its config, random): the live teacher, and the cached teacher (targets read
  from memory instead of the teacher's forward).
- SKD training step, MobileNetV2 student, a Swin-Base-sized teacher, mu = 15: B_s labeled + 15 B_s unlabeled images
  per step, both models forward, the student backward.
- each in float32 and in bf16 autocast with channels-last, and with `torch.compile` (bf16).
- the training input pipeline (decode, resize, random crop, flip) of `UnlabeledBatches` with all cores, on generated
  JPEGs of AVA-like size;
- `cskd score` on the GPU (`scoring.score_files`) over a generated folder.

Throughput is images per second of the step (student images; SKD counts all 16 B_s), after warm-up steps; memory is
`torch.cuda.max_memory_allocated` for the row. Compare it with the loader's rate: the slower bounds training.
"""

import argparse
import json
import os
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

FULL = {
    "student": "mobilenetv2_100",
    "teacher": "swin_base_patch4_window7_224",
    "clip": {"image_size": 224, "patch_size": 14, "hidden_size": 1024, "intermediate_size": 4096,
             "num_hidden_layers": 24, "num_attention_heads": 16, "projection_dim": 768},
    "image_size": 224, "batch_size": 32, "mu": 15, "steps": 20, "warmup": 5, "photos": 512, "photo_side": 800,
}  # fmt: skip
SMOKE = {
    "student": "test_resnet",
    "teacher": "test_vit",
    "clip": {"image_size": 32, "patch_size": 8, "hidden_size": 32, "intermediate_size": 37,
             "num_hidden_layers": 2, "num_attention_heads": 4, "projection_dim": 24},
    "image_size": 32, "batch_size": 4, "mu": 2, "steps": 2, "warmup": 1, "photos": 16, "photo_side": 96,
}  # fmt: skip


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_steps(step, steps: int, warmup: int, device: torch.device) -> tuple[float, float]:
    """Seconds per step after `warmup` steps, and the peak memory in GiB (0 off CUDA)."""
    for _ in range(warmup):
        step()
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    seconds = (time.perf_counter() - start) / steps
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
    return seconds, peak


def precision(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()


def cfa_rows(plan: dict, device: torch.device, variants: list[tuple[str, bool, bool]]) -> list[dict]:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from cskd_hf import CSKDConfig, CSKDForFeatureAlignment

    teacher = CLIPVisionModelWithProjection(CLIPVisionConfig(**plan["clip"])).to(device).eval().requires_grad_(False)
    width = plan["clip"]["hidden_size"]  # the CLS token: the paper's target
    rows = []
    for name, bf16, compiled in variants:
        for cached in (False, True):
            config = CSKDConfig(architecture=plan["student"], image_size=plan["image_size"], projection_dim=width)
            student = CSKDForFeatureAlignment(config).to(device).train()
            memory_format = torch.channels_last if bf16 else torch.contiguous_format
            student = student.to(memory_format=memory_format)
            forward = torch.compile(student) if compiled else student
            optimizer = torch.optim.Adam(student.parameters(), lr=1e-4)
            size = plan["image_size"]
            pixels = torch.randn(plan["batch_size"], 3, size, size, device=device).to(memory_format=memory_format)
            teacher_pixels = torch.randn(plan["batch_size"], 3, plan["clip"]["image_size"], plan["clip"]["image_size"],
                                         device=device)  # fmt: skip
            cached_targets = torch.randn(plan["batch_size"], width, device=device)

            def step(forward=forward, optimizer=optimizer, pixels=pixels, cached=cached, bf16=bf16,
                     teacher_pixels=teacher_pixels, cached_targets=cached_targets):  # fmt: skip
                with precision(device, bf16):
                    if cached:
                        targets = cached_targets
                    else:
                        with torch.no_grad():
                            targets = teacher(pixel_values=teacher_pixels).last_hidden_state[:, 0].float()
                    loss = forward(pixel_values=pixels, teacher_embeds=targets).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)

            seconds, peak = timed_steps(step, plan["steps"], plan["warmup"], device)
            rows.append({
                "row": f"CFA, {'cached' if cached else 'live'} teacher, {name}",
                "images/s": plan["batch_size"] / seconds, "step ms": 1000 * seconds, "peak GiB": peak,
            })  # fmt: skip
    return rows


def skd_rows(plan: dict, device: torch.device, variants: list[tuple[str, bool, bool]]) -> list[dict]:
    from cskd_hf import CSKDConfig, CSKDForAestheticScoring
    from cskd_hf.losses import skd_loss

    size = plan["image_size"]
    teacher = CSKDForAestheticScoring(CSKDConfig(architecture=plan["teacher"], image_size=size))
    teacher = teacher.to(device).eval().requires_grad_(False)
    total = plan["batch_size"] * (1 + plan["mu"])
    labels = torch.softmax(torch.randn(plan["batch_size"], 10, device=device), dim=-1)
    rows = []
    for name, bf16, compiled in variants:
        student = CSKDForAestheticScoring(CSKDConfig(architecture=plan["student"], image_size=size)).to(device)
        memory_format = torch.channels_last if bf16 else torch.contiguous_format
        student = student.to(memory_format=memory_format).train()
        teacher = teacher.to(memory_format=memory_format)
        forward = torch.compile(student) if compiled else student
        optimizer = torch.optim.Adam(student.parameters(), lr=1e-4)
        pixels = torch.randn(total, 3, size, size, device=device).to(memory_format=memory_format)

        def step(forward=forward, optimizer=optimizer, pixels=pixels, bf16=bf16, teacher=teacher):
            with precision(device, bf16):
                with torch.no_grad():
                    teacher_probabilities = teacher(pixel_values=pixels).probabilities
                student_probabilities = forward(pixel_values=pixels).probabilities
                loss, _, _ = skd_loss(student_probabilities, labels, teacher_probabilities, beta=15.0)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        seconds, peak = timed_steps(step, plan["steps"], plan["warmup"], device)
        rows.append({
            "row": f"SKD, mu = {plan['mu']}, {name}", "images/s": total / seconds, "step ms": 1000 * seconds,
            "peak GiB": peak,
        })  # fmt: skip
    return rows


def write_photos(folder: Path, count: int, side: int) -> list[Path]:
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        # Smooth gradients plus noise: JPEG sizes like a photo's, not like pure noise.
        x = np.linspace(0, 1, side)[None, :, None] * rng.uniform(0, 255, 3)
        y = np.linspace(0, 1, side * 3 // 4)[:, None, None] * rng.uniform(0, 255, 3)
        pixels = np.clip((x + y) / 2 + rng.normal(0, 12, (side * 3 // 4, side, 3)), 0, 255).astype(np.uint8)
        paths.append(folder / f"photo_{index:04d}.jpg")
        Image.fromarray(pixels).save(paths[-1], quality=90)
    return paths


def loader_row(plan: dict, folder: Path, workers: int) -> dict:
    from torch.utils.data import DataLoader

    from cskd_hf import CSKDImageProcessor
    from cskd_hf.data.batching import UnlabeledBatches, worker_processes
    from cskd_hf.data.unlabeled import load_unlabeled

    processor = CSKDImageProcessor(image_size=plan["image_size"])
    batches = UnlabeledBatches(load_unlabeled([str(folder)], shuffle_buffer=64), processor, plan["batch_size"])
    loader = iter(DataLoader(batches, batch_size=None, **worker_processes(batches, workers)))
    next(loader)  # the workers' start is not the pipeline's rate
    start, images = time.perf_counter(), 0
    for batch in loader:
        images += batch["num_read"]
    seconds = time.perf_counter() - start
    return {"row": f"input pipeline, {workers} workers, {plan['photo_side']} px JPEGs", "images/s": images / seconds,
            "step ms": float("nan"), "peak GiB": 0.0}  # fmt: skip


def score_row(plan: dict, paths: list[Path], device: torch.device, workers: int) -> dict:
    from cskd_hf import CSKDConfig, CSKDForAestheticScoring, CSKDImageProcessor
    from cskd_hf.inference.scoring import load_scorer, score_files

    with tempfile.TemporaryDirectory() as model_dir:
        config = CSKDConfig(architecture=plan["student"], image_size=plan["image_size"])
        CSKDForAestheticScoring(config).save_pretrained(model_dir)
        CSKDImageProcessor.from_model_config(config).save_pretrained(model_dir)
        scorer, processor = load_scorer(model_dir, device=str(device))
        start = time.perf_counter()
        results = list(score_files(scorer, processor, paths, 64, workers, progress=False))
        seconds = time.perf_counter() - start
    assert all(result.error is None for result in results)
    return {"row": f"cskd score on {device.type}, {workers} workers", "images/s": len(paths) / seconds,
            "step ms": float("nan"), "peak GiB": 0.0}  # fmt: skip


def format_table(rows: list[dict], device_name: str) -> str:
    lines = [f"Device: {device_name}", "", "| row | images/s | step (ms) | peak memory (GiB) |", "|---|---|---|---|"]
    for row in rows:
        step = "" if np.isnan(row["step ms"]) else f"{row['step ms']:.0f}"
        lines.append(f"| {row['row']} | {row['images/s']:.1f} | {step} | {row['peak GiB']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny models and a few steps (any device)")
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile rows")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    plan = SMOKE if args.smoke else FULL
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu" and not args.smoke:
        raise SystemExit("no GPU here: run it on a GPU machine, or with --smoke to check that it runs")
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    variants = [("fp32", False, False), ("bf16 + channels-last", True, False)]
    if not args.no_compile and not args.smoke:
        variants.append(("bf16 + channels-last + torch.compile", True, True))
    workers = os.cpu_count() or 1
    rows = cfa_rows(plan, device, variants) + skd_rows(plan, device, variants)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_photos(Path(tmp) / "photos", plan["photos"], plan["photo_side"])
        rows.append(loader_row(plan, Path(tmp) / "photos", workers))
        rows.append(score_row(plan, paths, device, workers))
    print(format_table(rows, device_name))
    if args.json:
        Path(args.json).write_text(json.dumps({"device": device_name, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
