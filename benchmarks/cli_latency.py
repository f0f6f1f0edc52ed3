"""What a user waits for at the command line: `cskd --help`, scoring one photo (graph cached, and on first use with the
export), and a folder of photos, each as its own `cskd` process timed from start to exit.

The model is the MobileNetV2 student at 224 px (random weights: speed does not depend on them), saved without an
`onnx/` folder, so the default path finds its graph in the graph cache (cached) or exports it there (first use: an
empty `CSKD_ONNX_CACHE` each run). The folder is `score_throughput.py`'s web mix (640-1024 px, one in five a PNG).
Each row is the median of `--repeats` runs, after one untimed run that warms the file cache.

    python benchmarks/cli_latency.py [--repeats 5] [--images 300] [--json results.json]

CPU figures depend on the machine; compare rows of one run, not runs on different machines.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from score_throughput import write_photo_folder, write_student  # noqa: E402

CSKD = str(Path(sys.executable).parent / "cskd")


def timed(command: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    return seconds


def median_seconds(command: list[str], repeats: int, fresh_cache: bool = False, cache: Path | None = None) -> float:
    """The median wall time of `repeats` runs (after one untimed one); `fresh_cache`: an empty graph cache each."""
    times = []
    for run in range(repeats + 1):
        folder = Path(tempfile.mkdtemp()) if fresh_cache else cache
        seconds = timed(command, {"CSKD_ONNX_CACHE": str(folder)})
        if fresh_cache:
            shutil.rmtree(folder)
        if run:
            times.append(seconds)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per row (their median)")
    parser.add_argument("--images", type=int, default=300, help="photos in the folder row")
    parser.add_argument("--work-dir", default=os.path.join(tempfile.gettempdir(), "cskd-cli-latency"))
    parser.add_argument("--json", help="also write the measurements to this file")
    args = parser.parse_args()

    work_dir = Path(args.work_dir)
    paths = write_photo_folder(work_dir / "photos-web", args.images, mix="web")
    exported = write_student(work_dir / "mv2-student")
    model_dir = work_dir / "mv2-student-no-onnx"  # the default path: its graph lives in the cache
    shutil.rmtree(model_dir, ignore_errors=True)
    shutil.copytree(exported, model_dir, ignore=shutil.ignore_patterns("onnx"))
    cache = work_dir / "graph-cache"
    shutil.rmtree(cache, ignore_errors=True)
    photo = str(paths[0])
    score_one = [CSKD, "score", photo, "--model", str(model_dir), "--no-progress"]
    score_folder = [CSKD, "score", str(paths[0].parent), "--model", str(model_dir), "--no-progress"]
    timed(score_one, {"CSKD_ONNX_CACHE": str(cache)})  # exports into the cache the cached rows use

    rows = [
        ("`cskd --help`", median_seconds([CSKD, "--help"], args.repeats), 0.5, None),
        ("`import cskd_hf`", median_seconds([sys.executable, "-c", "import cskd_hf"], args.repeats), None, None),
        ("`cskd score one.jpg` (graph cached)", median_seconds(score_one, args.repeats, cache=cache), 1.0, 1),
        ("`cskd score one.jpg`, first use (export included)", median_seconds(score_one, 3, fresh_cache=True), 10, 1),
        ("`cskd score one.jpg --backend torch`", median_seconds([*score_one, "--backend", "torch"], 3), None, 1),
        (f"`cskd score` a folder of {len(paths)} (graph cached)", median_seconds(score_folder, 3, cache=cache), None,
         len(paths)),
        (f"`cskd score` a folder of {len(paths)} `--backend torch`",
         median_seconds([*score_folder, "--backend", "torch"], 3), None, len(paths)),
    ]  # fmt: skip
    machine = platform.processor() or platform.machine()
    print(f"\n{machine}, {os.cpu_count()} cores; python {platform.python_version()}")
    print("| what | seconds (wall, median) | img/s (whole process) | goal |")
    print("|---|---:|---:|---:|")
    for name, seconds, goal, images in rows:
        rate = f"{images / seconds:.1f}" if images else "–"
        print(f"| {name} | {seconds:.2f} | {rate} | {f'≤ {goal} s' if goal else '–'} |")
    if args.json:
        measured = [{"what": name, "seconds": seconds, "goal": goal, "images": images} for name, seconds, goal, images
                    in rows]  # fmt: skip
        Path(args.json).write_text(json.dumps(measured, indent=2))


if __name__ == "__main__":
    main()
