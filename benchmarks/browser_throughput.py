"""Scoring in the browser (`cskd export --web`: onnxruntime-web's WASM build in headless Chromium) against `cskd score`
on the same photos, for a tiny CNN and a converted CLIP model.

The photos are the browser test's (tests/runtime/test_web.py: scikit-image's photographs, noise and gradients of odd
sizes, up- and downscaled ones, alpha, 16-bit, CMYK, EXIF-rotated, ICC, WebP, GIF, BMP), copied under distinct names
until there are `--images` of them (`cskd score` drops repeated paths). Each model's site is served on localhost by
`http.server`, plain (one WASM thread: no cross-origin isolation, no SharedArrayBuffer) and with
`Cross-Origin-Opener-Policy: same-origin` and `Cross-Origin-Embedder-Policy: require-corp` (multi-threaded WASM,
`window.cskd.threads` threads), and the photos chosen through the page's file input, as a user does; the page's own
timing (its status line: decode, resize, inference, drawing) is the median of `--repeats` passes after a warm-up.
`cskd score` (the torch-free default: the model folder's ONNX graph in ONNX Runtime, decoding threads, draft JPEG
decoding; and with `--no-draft`, full decoding as the page does) runs in this process over the same files, timed as a
whole (graph loading included: what a user waits for, less Python's start-up).

    python benchmarks/browser_throughput.py [--images 100] [--repeats 3] [--models DIR ...] [--json out.json]

Without `--models`, the tests' tiny models are built (random weights: speed does not depend on them): the tiny CNN of
tests/conftest.py (timm's test_resnet, 64 px) and the converted LAION predictor over a tiny CLIP tower (224 px,
tests/helpers.py). Needs Debian's chromium, playwright and `make web-vendor`. Compare rows of one run on one machine.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the tests' photos, models and page helpers
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def write_tiny_cnn(out_dir: Path) -> Path:
    """tests/conftest.py's `tiny_scorer_dir`."""
    import torch

    from cskd_hf import CSKDForAestheticScoring, CSKDImageProcessor
    from tests.helpers import tiny_config

    torch.manual_seed(0)
    config = tiny_config(head_hidden_sizes=[16], head_dropout=0.1, initializer_range=0.5)
    CSKDForAestheticScoring(config).save_pretrained(out_dir)
    CSKDImageProcessor.from_model_config(config).save_pretrained(out_dir)
    return out_dir


def build_models(work: Path) -> list[Path]:
    from tests.helpers import write_tiny_laion

    cnn = work / "tiny-cnn"
    if not (cnn / "config.json").exists():
        write_tiny_cnn(cnn)
    clip = work / "laion" / "converted"
    if not (clip / "config.json").exists():
        write_tiny_laion(work / "laion")
    return [cnn, clip]


def photo_folder(work: Path, count: int) -> list[Path]:
    """The test's readable photos, copied under distinct names until there are `count`."""
    from tests.runtime.test_web import write_web_photos

    source = work / "source-photos"
    shutil.rmtree(source, ignore_errors=True)
    readable, _ = write_web_photos(source)
    folder = work / f"photos-{count}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    paths = []
    for index in range(count):
        path = readable[index % len(readable)]
        paths.append(folder / f"{index:03d}-{path.name}")
        shutil.copyfile(path, paths[-1])
    return paths


def page_rate(status: str) -> tuple[int, float]:
    """(photos, seconds) from the page's status line `N photos in X s, Y img/s ...`."""
    words = status.split()
    return int(words[0]), float(words[3])


def browser_rows(site: Path, paths: list[Path], repeats: int, model: str) -> list[dict]:
    from tests.runtime.test_web import launch_chromium, open_page, score_in_page, serve

    rows = []
    with launch_chromium() as browser:
        for isolated in (False, True):
            with serve(site, isolated=isolated) as url, open_page(browser, url) as (page, outside, errors):
                threads = page.evaluate("() => window.cskd.threads")
                score_in_page(page, paths[:16])  # warm-up: WASM compilation, first batches
                timings = []
                for _ in range(repeats):
                    results = score_in_page(page, paths)
                    assert all("score" in result for result in results), [r for r in results if "error" in r]
                    images, seconds = page_rate(page.inner_text("#status"))
                    assert images == len(paths)
                    timings.append(seconds)
                assert outside == [] and errors == [], (outside, errors)
            label = "COOP/COEP (cross-origin isolated)" if isolated else "plain static server"
            rows.append({"method": f"browser, {label}", "model": model, "images": len(paths), "threads": threads,
                         "seconds": statistics.median(timings)})  # fmt: skip
            print(f"{model}: {rows[-1]['method']}: {len(paths) / rows[-1]['seconds']:.1f} img/s", flush=True)
    return rows


def cskd_score_rows(model_dir: Path, paths: list[Path], repeats: int, model: str, work: Path) -> list[dict]:
    from cskd_hf.cli import main as cskd

    rows = []
    for extra, label in (([], "cskd score (default: ONNX Runtime, draft JPEG decoding)"),
                         (["--no-draft"], "cskd score --no-draft (full decoding, as the page)")):  # fmt: skip
        argv = ["score", *map(str, paths), "--model", str(model_dir), "--no-progress", "--output",
                str(work / "scores.csv"), *extra]  # fmt: skip
        assert cskd(argv) == 0  # warm-up (file cache, graph)
        timings = []
        for _ in range(repeats):
            start = time.perf_counter()
            assert cskd(argv) == 0
            timings.append(time.perf_counter() - start)
        rows.append({"method": label, "model": model, "images": len(paths), "threads": os.cpu_count(),
                     "seconds": statistics.median(timings)})  # fmt: skip
        print(f"{model}: {label}: {len(paths) / rows[-1]['seconds']:.1f} img/s", flush=True)
    return rows


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def chromium_version() -> str:
    from tests.runtime.test_web import launch_chromium

    with launch_chromium() as browser:
        return browser.version


def format_table(rows: list[dict]) -> str:
    lines = ["| model | method | images | threads | img/s | ms/img |", "|---|---|---:|---:|---:|---:|"]
    for row in rows:
        rate = row["images"] / row["seconds"]
        lines.append(
            f"| {row['model']} | {row['method']} | {row['images']} | {row['threads']} | {rate:.1f} | "
            f"{1e3 / rate:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100, help="photos per pass (the test's, repeated)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per method (median)")
    parser.add_argument("--models", nargs="+", help="saved scoring model folders; default: the tests' tiny models")
    parser.add_argument("--work-dir", default=os.path.join(tempfile.gettempdir(), "cskd-browser-benchmark"))
    parser.add_argument("--json", help="also write the measurements to this file")
    args = parser.parse_args()

    from cskd_hf.cli import main as cskd
    from cskd_hf.runtime.web import web_assets

    if not (web_assets() / "vendor" / "ort-wasm-simd-threaded.wasm").is_file():
        sys.exit("onnxruntime-web is not installed: run `make web-vendor`")
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    models = [Path(model) for model in args.models] if args.models else build_models(work)
    paths = photo_folder(work, args.images)
    rows = []
    for index, model_dir in enumerate(models):
        name = "tiny CNN (64 px)" if not args.models and index == 0 else model_dir.name
        if not args.models and index == 1:
            name = "converted CLIP (224 px)"
        copy = work / f"model-{index}"
        if copy.exists():
            shutil.rmtree(copy)
        shutil.copytree(model_dir, copy)
        site = work / f"site-{index}"
        assert cskd(["export", "--model", str(copy), "--web", str(site)]) == 0  # the graph goes into the copy
        rows += browser_rows(site, paths, args.repeats, name)
        rows += cskd_score_rows(copy, paths, args.repeats, name, work)
    print(f"\n$ python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}".rstrip())
    print(f"Machine: {machine()}; Chromium {chromium_version()} (headless); onnxruntime-web 1.22.0 (WASM)")
    print(f"{len(paths)} photos (the browser test's {len(set(p.name[4:] for p in paths))}, repeated), median of "
          f"{args.repeats} passes; browser: the page's own timing, after a warm-up\n")  # fmt: skip
    print(format_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
