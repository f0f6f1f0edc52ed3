"""End-to-end folder scoring: our MobileNetV2 student (`cskd score`'s default, eager PyTorch, compiled, ONNX Runtime
fp32 and int8, the `image-aesthetics` pipeline) against pyiqa's NIMA, NIMA-VGG16 and LAION aesthetic predictor, on
the same folder of real photos, in one run.

Random weights everywhere, no downloads: speed does not depend on the weights. The photo folder is written by the
script from scikit-image's bundled photographs, re-rendered at mixed sizes, so decoding costs what it costs on real
folders: `--mix camera` (640 px to 4000 px long side, JPEG) or `--mix web` (640-1024 px, one in five a PNG, as a
folder of photos from the web or a phone's exports).

Each method runs in its own process (so that peak memory is its own) over the folder, as a user would run it: ours
as `cskd score` runs them, the ONNX rows through the torch-free runtime (`cskd_hf.runtime.PortableScorer`: decoding
threads, draft JPEG decoding, batches) — `cskd-default` is exactly `cskd score`'s default path, its ONNX graph
exported on first use into an empty cache (the setup column) — and the PyTorch rows through
`cskd_hf.inference.scoring.score_files` (DataLoader workers),
pyiqa's one image at a time through `pyiqa.create_metric(...)(path)`, which is what its CLI does. Ours take the median
of `--repeats` passes; pyiqa's metrics see one pass over a strided subset of the folder (same size mix) so that the
slow ones finish; throughputs are rates, so comparable. A second, sequential pass over a subset splits the time per
image into decode, preprocess and forward: the profile of where the time goes.

    pip install -e .[bench]     # pyiqa, onnxruntime; benchmark-only dependencies
    python benchmarks/score_throughput.py [--images 300] [--pyiqa-images 40] [--threads 2] [--json results.json]

CPU figures depend on the machine; compare rows of one run, not runs on different machines.
"""

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MIXES = {  # long sides, their weights, the share of PNGs
    "camera": ((640, 1024, 2048, 4000), (0.4, 0.3, 0.2, 0.1), 0.0),
    "web": ((640, 768, 896, 1024), (0.25, 0.25, 0.25, 0.25), 0.2),
}
OURS = ("cskd-default", "cskd-eager", "cskd-compiled", "cskd-onnx", "cskd-onnx-int8", "cskd-pipeline")
PYIQA = {"pyiqa-nima": "nima", "pyiqa-nima-vgg16": "nima-vgg16-ava", "pyiqa-laion": "laion_aes"}


def write_photo_folder(out_dir: Path, count: int, seed: int = 0, mix: str = "camera") -> list[Path]:
    """`count` photos of the `mix`'s sizes and formats made from scikit-image's photographs (cropped, flipped,
    resized)."""
    from PIL import Image

    from cskd_hf.data.samples import SAMPLE_PHOTOS, sample_photo

    out_dir.mkdir(parents=True, exist_ok=True)
    existing = photo_paths(out_dir)
    if len(existing) == count:
        return existing
    long_sides, weights, png_share = MIXES[mix]
    rng = np.random.default_rng(seed)
    sources = [Image.fromarray(sample_photo(name)).convert("RGB") for name, _ in SAMPLE_PHOTOS]
    paths = []
    for index in range(count):
        image = sources[index % len(sources)]
        width, height = image.size
        left, top = rng.integers(0, width // 8 + 1), rng.integers(0, height // 8 + 1)
        image = image.crop(
            (left, top, width - rng.integers(0, width // 8 + 1), height - rng.integers(0, height // 8 + 1))
        )
        if rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        long_side = int(rng.choice(long_sides, p=weights))
        scale = long_side / max(image.size)
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)
        as_png = png_share and index % round(1 / png_share) == round(1 / png_share) - 1
        path = out_dir / f"photo_{index:04d}.{'png' if as_png else 'jpg'}"
        image.save(path, **({} if as_png else {"quality": 90}))
        paths.append(path)
    return paths


def photo_paths(folder: Path) -> list[Path]:
    return sorted(path for path in folder.glob("photo_*.*") if path.suffix in (".jpg", ".png"))


def write_student(out_dir: Path) -> Path:
    """An MV2 scoring model at 224 px (random weights) with its ONNX graphs, fp32 and int8."""
    from cskd_hf import CSKDConfig, CSKDForAestheticScoring, CSKDImageProcessor
    from cskd_hf.inference.export import export_onnx, onnx_path

    if not onnx_path(out_dir, quantized=True).exists():
        config = CSKDConfig(architecture="mobilenetv2_100", image_size=224)
        CSKDForAestheticScoring(config).save_pretrained(out_dir)
        CSKDImageProcessor.from_model_config(config).save_pretrained(out_dir)
        export_onnx(out_dir, quantize=True)
    return out_dir


@contextlib.contextmanager
def pyiqa_without_downloads():
    """pyiqa builds its networks with pretrained weights it downloads; build them randomly initialised instead."""
    import clip.model
    import pyiqa.archs.laion_aes_arch as laion_arch
    import pyiqa.archs.nima_arch as nima_arch
    import timm

    create_model = timm.create_model
    nima_arch.timm.create_model = lambda *args, **kwargs: create_model(*args, **{**kwargs, "pretrained": False})

    def random_vit_l14(*args, **kwargs):
        model = clip.model.CLIP(
            embed_dim=768,
            image_resolution=224,
            vision_layers=24,
            vision_width=1024,
            vision_patch_size=14,
            context_length=77,
            vocab_size=49408,
            transformer_width=768,
            transformer_heads=12,
            transformer_layers=12,
        )
        return model.float().eval(), None

    load = laion_arch.clip.load
    laion_arch.clip.load = random_vit_l14
    try:
        yield
    finally:
        nima_arch.timm.create_model = create_model
        laion_arch.clip.load = load


def peak_rss_mb() -> tuple[float, float]:
    """Peak resident memory of this process and of its largest finished child (DataLoader worker), in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def run_ours(
    method: str, paths: list[Path], model_dir: Path, batch_size: int | None, num_workers: int | None, repeats: int
):
    if method == "cskd-pipeline":
        return run_pipeline(paths, model_dir, batch_size, num_workers, repeats)
    if method in ("cskd-default", "cskd-onnx", "cskd-onnx-int8"):
        return run_portable(method, paths, model_dir, batch_size, num_workers, repeats)
    import torch

    from cskd_hf.inference.scoring import TorchScorer, load_scorer, score_files

    start = time.perf_counter()
    model, image_processor = load_scorer(model_dir, device="cpu")
    scorer = TorchScorer(model)
    if method == "cskd-compiled":
        scorer.model = torch.compile(scorer.model)
    # Warm-up (and, for torch.compile, compilation) on a few images, timed apart from the run.
    list(score_files(scorer, image_processor, paths[:32], batch_size, 0, progress=False))
    setup_seconds = time.perf_counter() - start
    timings = []
    for _ in range(repeats):  # the median of a few passes: one pass over the folder takes only seconds
        start = time.perf_counter()
        results = list(score_files(scorer, image_processor, paths, batch_size, num_workers, progress=False))
        timings.append(time.perf_counter() - start)
    seconds = float(np.median(timings))
    assert all(result.error is None for result in results)
    stages = stage_times_ours(scorer, image_processor, paths[::4][:64], batch_size or scorer.default_batch_size)
    return {"images": len(results), "seconds": seconds, "setup_seconds": setup_seconds, **stages}


def run_portable(
    method: str, paths: list[Path], model_dir: Path, batch_size: int | None, num_threads: int | None, repeats: int
):
    """`cskd score`'s ONNX paths, which run without torch: the default (the graph exported on first use into an
    empty cache: the setup column; torch is imported for that export only) and the folder's `cskd export` graph."""
    from cskd_hf.runtime import PortableScorer

    start = time.perf_counter()
    if method == "cskd-default":
        from cskd_hf.inference.export import export_to_graph_cache

        os.environ["CSKD_ONNX_CACHE"] = tempfile.mkdtemp()  # an empty cache: the setup time includes the export
        export_to_graph_cache(model_dir)
    scorer = PortableScorer.from_pretrained(model_dir, quantized=method.endswith("int8"))
    list(scorer.score_files(paths[:32], batch_size=batch_size))  # warm-up
    setup_seconds = time.perf_counter() - start
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        results = list(scorer.score_files(paths, batch_size=batch_size, num_threads=num_threads))
        timings.append(time.perf_counter() - start)
    assert all(result.error is None for result in results)
    stages = stage_times_portable(scorer, paths[::4][:64], batch_size or scorer.default_batch_size)
    return {"images": len(results), "seconds": float(np.median(timings)), "setup_seconds": setup_seconds, **stages}


def stage_times_portable(scorer, paths, batch_size) -> dict:
    """Milliseconds per image of each stage of the torch-free path, one after the other in this process."""
    from cskd_hf.data.images import open_image

    def preprocess(images):
        return np.stack([scorer.spec.pixel_values(image) for image in images])

    return stage_times(paths, batch_size, lambda path: open_image(path, draft_size=scorer.spec.draft_size()),
                       preprocess, scorer)  # fmt: skip


def run_pipeline(paths: list[Path], model_dir: Path, batch_size: int | None, num_workers: int | None, repeats: int):
    """`pipeline("image-aesthetics")` with its defaults over the folder's paths (graph cache already warm)."""
    from transformers import pipeline

    import cskd_hf
    from cskd_hf.inference.scoring import default_num_workers

    cskd_hf.register()  # the `image-aesthetics` task

    start = time.perf_counter()
    scorer = pipeline("image-aesthetics", model=str(model_dir))
    batch_size = batch_size or scorer.scorer.default_batch_size
    num_workers = default_num_workers() if num_workers is None else num_workers
    scorer([str(path) for path in paths[:32]], batch_size=batch_size, num_workers=0)
    setup_seconds = time.perf_counter() - start
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        results = scorer([str(path) for path in paths], batch_size=batch_size, num_workers=num_workers)
        timings.append(time.perf_counter() - start)
    assert len(results) == len(paths)
    nan = float("nan")
    return {"images": len(paths), "seconds": float(np.median(timings)), "setup_seconds": setup_seconds,
            "ms_decode": nan, "ms_preprocess": nan, "ms_forward": nan}  # fmt: skip


def stage_times_ours(scorer, image_processor, paths, batch_size) -> dict:
    """Milliseconds per image of each stage of the PyTorch path, one after the other in this process."""
    import torch

    from cskd_hf.data.images import open_image

    resize_and_crop = image_processor.resize_and_crop()

    def preprocess(images):
        return image_processor.to_pixel_values(torch.stack([resize_and_crop(image) for image in images]))

    return stage_times(paths, batch_size, lambda path: open_image(path, draft_size=image_processor.resize_size),
                       preprocess, scorer)  # fmt: skip


def stage_times(paths, batch_size, decode, preprocess, forward) -> dict:
    """Milliseconds per image of decoding (`decode`: a path to an image), preprocessing (`preprocess`: the images to
    a batch) and the forward pass (`forward`, batch by batch)."""
    start = time.perf_counter()
    images = [decode(path) for path in paths]
    decode_seconds = time.perf_counter() - start
    start = time.perf_counter()
    pixel_values = preprocess(images)
    preprocess_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for first in range(0, len(paths), batch_size):
        forward(pixel_values[first : first + batch_size])
    forward_seconds = time.perf_counter() - start
    return {
        "ms_decode": 1e3 * decode_seconds / len(paths),
        "ms_preprocess": 1e3 * preprocess_seconds / len(paths),
        "ms_forward": 1e3 * forward_seconds / len(paths),
    }


def run_pyiqa(method: str, paths: list[Path]) -> dict:
    import pyiqa
    import torch
    from pyiqa.utils.img_util import imread2tensor

    start = time.perf_counter()
    with pyiqa_without_downloads():
        metric = pyiqa.create_metric(PYIQA[method], device=torch.device("cpu"), pretrained=False)
    metric(str(paths[0]))  # warm-up
    setup_seconds = time.perf_counter() - start
    start = time.perf_counter()
    scores = [float(metric(str(path))) for path in paths]
    seconds = time.perf_counter() - start
    assert all(np.isfinite(scores))
    subset = paths[:8]
    start = time.perf_counter()
    tensors = [imread2tensor(str(path), rgb=True).unsqueeze(0) for path in subset]
    decode = time.perf_counter() - start
    start = time.perf_counter()
    with torch.no_grad():
        for tensor in tensors:
            metric(tensor)
    forward = time.perf_counter() - start
    return {
        "images": len(paths),
        "seconds": seconds,
        "setup_seconds": setup_seconds,
        "ms_decode": 1e3 * decode / len(subset),
        "ms_preprocess": float("nan"),
        "ms_forward": 1e3 * forward / len(subset),
    }


def worker(args) -> None:
    """One method in this (fresh) process; prints its measurements as JSON."""
    if args.worker not in ("cskd-default", "cskd-onnx", "cskd-onnx-int8"):  # the torch-free rows load no torch
        import torch

        torch.set_num_threads(args.threads)
    paths = photo_paths(Path(args.folder))
    if args.worker in PYIQA:
        measured = run_pyiqa(args.worker, paths[:: max(1, len(paths) // args.pyiqa_images)][: args.pyiqa_images])
    else:
        measured = run_ours(args.worker, paths, Path(args.model), args.batch_size, args.num_workers, args.repeats)
    measured["rss_mb"], measured["worker_rss_mb"] = peak_rss_mb()
    print("RESULT " + json.dumps({"method": args.worker, **measured}))


def cell(milliseconds: float) -> str:
    return "–" if np.isnan(milliseconds) else f"{milliseconds:.1f}"


def format_table(rows: list[dict]) -> str:
    reference = next((row for row in rows if row["method"] == "pyiqa-nima"), None)
    lines = [
        "| method | images | img/s | setup s | decode ms/img | preprocess ms/img | forward ms/img |"
        " peak RSS MB (main / worker) | × pyiqa NIMA |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        rate = row["images"] / row["seconds"]
        ratio = rate / (reference["images"] / reference["seconds"]) if reference else float("nan")
        decode, preprocess, forward = (cell(row[key]) for key in ("ms_decode", "ms_preprocess", "ms_forward"))
        if np.isnan(row["ms_preprocess"]) and not np.isnan(row["ms_forward"]):
            preprocess = "in forward"  # pyiqa resizes inside its forward pass
        worker_rss = f" / {row['worker_rss_mb']:.0f}" if row["worker_rss_mb"] else ""
        lines.append(
            f"| {row['method']} | {row['images']} | {rate:.1f} | {row['setup_seconds']:.1f} | {decode} | "
            f"{preprocess} | {forward} | {row['rss_mb']:.0f}{worker_rss} | {ratio:.1f}× |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=300, help="photos in the folder")
    parser.add_argument("--mix", choices=sorted(MIXES), default="web", help="the folder's sizes and formats")
    parser.add_argument("--pyiqa-images", type=int, default=40, help="photos (a strided subset) scored by pyiqa")
    # torch.compile is left out by default: on this CPU it gained 1.26x on the forward pass (5.7 against 7.2 ms per
    # image) but recompiled for the last, smaller batch, which cost more than the whole folder; ONNX Runtime is faster.
    default_methods = [method for method in (*OURS, *PYIQA) if method != "cskd-compiled"]
    parser.add_argument("--methods", nargs="+", default=default_methods, choices=[*OURS, *PYIQA])
    parser.add_argument("--repeats", type=int, default=3, help="passes over the folder per method of ours (median)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads per method")
    parser.add_argument("--batch-size", type=int, help="our batch size; default: cskd score's")
    parser.add_argument("--num-workers", type=int, help="our DataLoader workers; default: cskd score's")
    parser.add_argument("--work-dir", default=os.path.join(tempfile.gettempdir(), "cskd-score-benchmark"))
    parser.add_argument("--json", help="also write the measurements to this file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    work_dir = Path(args.work_dir)
    paths = write_photo_folder(work_dir / f"photos-{args.mix}", args.images, mix=args.mix)
    model_dir = write_student(work_dir / "mv2-student")
    print(f"{len(paths)} photos in {paths[0].parent}; MV2 student (random weights) in {model_dir}", flush=True)
    rows = []
    for method in args.methods:
        command = [
            sys.executable,
            __file__,
            "--worker",
            method,
            "--folder",
            str(paths[0].parent),
            "--model",
            str(model_dir),
            "--threads",
            str(args.threads),
            "--repeats",
            str(args.repeats),
            "--pyiqa-images",
            str(args.pyiqa_images),
        ]
        if args.batch_size:
            command += ["--batch-size", str(args.batch_size)]
        if args.num_workers is not None:
            command += ["--num-workers", str(args.num_workers)]
        completed = subprocess.run(command, capture_output=True, text=True)
        result = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
        if completed.returncode or not result:
            print(f"{method} failed:\n{completed.stderr[-3000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(result[-1][len("RESULT ") :]))
        row = rows[-1]
        print(f"{method}: {row['images'] / row['seconds']:.1f} img/s", flush=True)
    print(f"\nEnd-to-end folder scoring, {args.mix} mix, CPU, {args.threads} threads (torch.get_num_threads):\n")
    print(format_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
