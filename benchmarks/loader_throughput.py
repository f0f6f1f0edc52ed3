"""Images per second per CPU core of the training input pipeline, by source image size, draft decoding and cores.

The pipeline is the trainers' own: `load_unlabeled([source], shuffle_buffer=0)` streamed through `UnlabeledBatches`
(decode, 256x256 resize, random 224 crop, horizontal flip, one batch of `uint8` crops per chunk of the stream) in
DataLoader worker processes started by `worker_processes`, with `CSKDImageProcessor()`'s defaults. N cores means N
workers (torch runs one thread in each); the training process only receives the batches: the trainers normalise them
on their device (`to_pixel_values`), which this CPU table leaves out. Each row times a pass
after the workers' first round of batches (their start is not the pipeline's rate), best of `--repeats` passes.

Sources, generated here (no downloads) from scikit-image's photographs: a random 4:3 or 3:2 crop, flipped or not,
resized to the source's long side with a little grain, saved as JPEG quality 90:
- AVA-like photos, long side 500-800 px; OpenImages-like, 1024 px; camera photos, 4000 px;
- 256-px shards: the AVA-like photos written by `cskd data shard` (the image processor's 256x256 resize, JPEG
  quality 95, Parquet).
"Draft" rows decode JPEGs at 1/2, 1/4 or 1/8 of their size where that still covers the 256 px resize
(`UnlabeledBatches(..., draft=True)`).

Columns: img/s is wall-clock, so other work on the machine lowers it; CPU ms/img is the CPU time of the workers and
the training process per image, which it barely changes. "Bound by" splits that CPU time with a profile of the same
images in one process and thread: reading the stream (every worker reads all of it and keeps its own chunks, so this
is paid once per worker), decoding, the transform (resize, crop, flip, each image's RNG), and the rest (collating,
handing the batch to the training process).

    python benchmarks/loader_throughput.py [--images 1024] [--cores 1 2] [--json loader_throughput.json]
    python benchmarks/loader_throughput.py --quick      # a few images of each kind: checks that the script runs

CPU figures depend on the machine; compare rows of one run.
"""

import argparse
import contextlib
import io
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import torch
from PIL import Image, ImageChops
from torch.utils.data import DataLoader

from cskd_hf import CSKDImageProcessor
from cskd_hf.data.batching import UnlabeledBatches, decode_or_skip, example_seed, worker_processes
from cskd_hf.data.samples import SAMPLE_PHOTOS, sample_photo
from cskd_hf.data.shard import shard
from cskd_hf.data.unlabeled import load_unlabeled


@dataclass(frozen=True)
class PhotoSize:
    name: str
    long_sides: tuple[int, int]  # drawn uniformly between the two
    share: float  # images of this size per `--images`


PHOTO_SIZES = (
    PhotoSize("AVA-like (500-800 px)", (500, 800), 1.0),
    PhotoSize("OpenImages-like (1024 px)", (1024, 1024), 0.5),
    PhotoSize("camera (4000 px)", (4000, 4000), 1 / 32),
)
SHARDS = "256-px shards (Parquet)"  # made from the AVA-like photos
GRAIN = 4  # std of the noise added to the resized photos: JPEG bits per pixel nearer a real photo's
ROUNDS = 8  # a row reads at least this many batches per worker (2 with --quick)


def photo(sources: list[Image.Image], grain: Image.Image, rng: np.random.Generator, long_side: int) -> Image.Image:
    """A random 4:3 or 3:2 crop of one of `sources`, flipped or not, landscape or portrait, resized to `long_side`,
    plus a random window of `grain` (RGB noise around 128, at least `long_side` square)."""
    source = sources[rng.integers(len(sources))]
    aspect = rng.choice([4 / 3, 3 / 2])
    width, height = source.size
    crop_width, crop_height = min(width, round(height * aspect)), min(height, round(width / aspect))
    left, top = rng.integers(0, width - crop_width + 1), rng.integers(0, height - crop_height + 1)
    image = source.crop((left, top, left + crop_width, top + crop_height))
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    size = (long_side, round(long_side / aspect))
    if rng.random() < 0.3:
        image, size = image.transpose(Image.Transpose.ROTATE_90), size[::-1]
    left, top = rng.integers(0, grain.width - size[0] + 1), rng.integers(0, grain.height - size[1] + 1)
    noise = grain.crop((left, top, left + size[0], top + size[1]))
    return ImageChops.add(image.resize(size, Image.Resampling.BICUBIC), noise, offset=-128)


def write_photos(folder: Path, count: int, long_sides: tuple[int, int], seed: int) -> list[Path]:
    """`count` JPEGs (quality 90) of long side in `long_sides`, made from scikit-image's photographs; a folder that
    holds `count` of them already is kept (`--work-dir`)."""
    existing = sorted(folder.glob("*.jpg"))
    if len(existing) == count:
        return existing
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sources = [Image.fromarray(sample_photo(name)).convert("RGB") for name, _ in SAMPLE_PHOTOS]
    grain = Image.effect_noise((long_sides[1], long_sides[1]), GRAIN).convert("RGB")
    paths = []
    for index in range(count):
        paths.append(folder / f"photo_{index:05d}.jpg")
        long_side = int(rng.integers(long_sides[0], long_sides[1] + 1))
        photo(sources, grain, rng, long_side).save(paths[-1], quality=90)
    return paths


def batch_size_for(count: int, max_cores: int, batch_size: int, rounds: int) -> int:
    """The largest batch up to `batch_size` that gives every worker at least `rounds` batches."""
    return max(1, min(batch_size, count // (rounds * max_cores)))


class CPUClock:
    """CPU seconds used by this process and the given ones (DataLoader workers) since the clock started; a thread or
    process that has ended counts with its last reading, so read the clock as often as a worker may end."""

    def __init__(self, processes: list[psutil.Process]):
        self.processes = [psutil.Process(), *processes]
        self.seconds = {}
        self.start = self._total()

    def read(self) -> float:
        return self._total() - self.start

    def _total(self) -> float:
        for process in self.processes:
            with contextlib.suppress(psutil.NoSuchProcess, FileNotFoundError, ProcessLookupError):
                self.seconds |= {(process.pid, thread): seconds for thread, seconds in thread_seconds(process).items()}
        return sum(self.seconds.values())


def thread_seconds(process: psutil.Process) -> dict[int, float]:
    """CPU seconds of each thread of a process: to the nanosecond from Linux's schedstat (the 10 ms ticks of
    psutil's `cpu_times` are too coarse for `--quick`'s rows), else psutil's for the whole process."""
    tasks = Path(f"/proc/{process.pid}/task")
    if not tasks.is_dir():
        times = process.cpu_times()
        return {0: times.user + times.system}
    seconds = {}
    for task in tasks.iterdir():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # a thread that just ended
            seconds[int(task.name)] = int((task / "schedstat").read_text().split()[0]) / 1e9
    return seconds


def pipeline_rate(source: str, image_processor: CSKDImageProcessor, cores: int, draft: bool, batch_size: int) -> dict:
    """Images read, wall seconds and CPU seconds (workers and this process) of `cores` workers, after their first
    round of batches."""
    stream = load_unlabeled([source], shuffle_buffer=0)
    batches = UnlabeledBatches(stream, image_processor, batch_size, draft=draft, uint8=True)
    loader = DataLoader(batches, batch_size=None, **worker_processes(batches, cores))
    images, start, clock = 0, None, None
    for index, batch in enumerate(loader):
        if batch["num_skipped"]:
            raise RuntimeError(f"{batch['num_skipped']} images of {source} could not be decoded")
        if index == cores - 1:  # worker k returns batch k first, so the workers are all running from here on
            # The fork server's children: the workers (the server itself waits).
            clock = CPUClock(psutil.Process().children(recursive=True))
            start = time.perf_counter()
        elif index >= cores:
            images += batch["num_read"]
            cpu_seconds, seconds = clock.read(), time.perf_counter() - start
    if images == 0:
        raise ValueError(f"{source}: too few batches to time; give more images")
    return {"images": images, "seconds": seconds, "cpu_seconds": cpu_seconds}


def stage_profile(
    source: str, image_processor: CSKDImageProcessor, draft: bool, count: int, batch_size: int, repeats: int
) -> dict:
    """CPU milliseconds per image of each stage, one after the other in this process, best of `repeats`: reading the
    stream (a pass over the whole source, as each worker makes), and decoding and transforming its first `count`
    images; and their mean size in megapixels and JPEG bits per pixel."""
    stream = load_unlabeled([source], shuffle_buffer=0)
    encoded = [item["image"] for item, _ in zip(stream, range(count))]  # also warms up (file cache, lazy imports)
    draft_size = image_processor.draft_size(draft)

    def read() -> int:
        return sum(len(chunk["image"]) for chunk in stream.iter(batch_size=batch_size))

    def decode() -> list:
        return [decode_or_skip(item, draft_size) for item in encoded]

    def transform() -> None:
        for position, image in enumerate(images):
            # What `transform_image` does after decoding, for the trainers (`uint8=True`).
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(example_seed(0, 0, position))
                image_processor.resize_and_crop(train=True)(image)

    total, images = read(), decode()
    ms = {}
    for stage, run, per in (("stream", read, total), ("decode", decode, count), ("transform", transform, count)):
        seconds = []
        for _ in range(repeats):
            start = time.process_time()
            run()
            seconds.append(time.process_time() - start)
        ms[f"ms_{stage}"] = 1e3 * min(seconds) / per
    data = [item["bytes"] or Path(item["path"]).read_bytes() for item in encoded]
    pixels = []
    for item in data:
        with Image.open(io.BytesIO(item)) as image:  # reads the header only
            pixels.append(image.width * image.height)
    return ms | {
        "megapixels": float(np.mean(pixels)) / 1e6,
        "jpeg_bits_per_pixel": 8 * sum(map(len, data)) / sum(pixels),
    }


def measure(
    sources: dict[str, tuple[str, int]],
    cores: list[int],
    batch_size: int,
    profile_images: int,
    repeats: int,
    rounds: int = ROUNDS,
) -> list:
    """One row per (source, draft, cores); `sources` maps a name to (source string, number of images). A row's rate,
    its CPU time and each profiled stage are the best of `repeats` passes (other work on the machine only slows a
    pass down)."""
    torch.set_num_threads(1)  # the profile runs in one thread, as a worker does
    image_processor = CSKDImageProcessor()
    rows = []
    for name, (source, count) in sources.items():
        batch = batch_size_for(count, max(cores), batch_size, rounds)
        for draft in (False,) if name == SHARDS else (False, True):
            profile = stage_profile(source, image_processor, draft, min(count, profile_images), batch, repeats)
            for num_cores in cores:
                load = os.getloadavg()[0]
                runs = [pipeline_rate(source, image_processor, num_cores, draft, batch) for _ in range(repeats)]
                rate = max(run["images"] / run["seconds"] for run in runs)
                cpu_ms = min(1e3 * run["cpu_seconds"] / run["images"] for run in runs)
                # Every worker reads the whole stream (and keeps its own chunks): the reading is paid once per worker.
                stages = {
                    "stream": profile["ms_stream"] * num_cores,
                    "decode": profile["ms_decode"],
                    "transform": profile["ms_transform"],
                }
                stages["other"] = cpu_ms - sum(stages.values())
                bound = max(stages, key=stages.get)
                rows.append({
                    "source": name, "draft": None if name == SHARDS else draft, "cores": num_cores,
                    "batch_size": batch, "images": runs[0]["images"], "passes": runs, "images/s": rate,
                    "images/s per core": rate / num_cores, "ms per image per core": 1e3 * num_cores / rate,
                    "cpu ms per image": cpu_ms, "images per cpu second": 1e3 / cpu_ms,
                    **{f"ms_{stage}": value for stage, value in stages.items()}, "bound by": bound,
                    "bound share": stages[bound] / cpu_ms, "megapixels": profile["megapixels"],
                    "jpeg_bits_per_pixel": profile["jpeg_bits_per_pixel"], "load average before": load,
                })  # fmt: skip
                print(
                    f"{name}, draft {draft}, {num_cores} cores: {rate:.1f} img/s, {cpu_ms:.2f} CPU ms/img", flush=True
                )
    return rows


def shard_ratios(rows: list[dict]) -> list[dict]:
    """Per core count: the shards' rate per core over AVA-size photos' (full and draft decoding), by wall time and by
    CPU time."""
    ratios = []
    for cores in sorted({row["cores"] for row in rows}):
        shards = next(row for row in rows if row["source"] == SHARDS and row["cores"] == cores)
        for row in rows:
            if row["source"] == PHOTO_SIZES[0].name and row["cores"] == cores:
                ratios.append({
                    "cores": cores, "ava_draft": row["draft"],
                    "wall": shards["images/s per core"] / row["images/s per core"],
                    "cpu": row["cpu ms per image"] / shards["cpu ms per image"],
                })  # fmt: skip
    return ratios


def format_table(rows: list[dict], ratios: list[dict]) -> str:
    lines = [
        "| source | draft | cores | images | img/s | img/s per core | ms/img per core | CPU ms/img | stream ms"
        " | decode ms | transform ms | other ms | bound by |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        draft = "–" if row["draft"] is None else ("on" if row["draft"] else "off")
        stages = " | ".join(f"{row[f'ms_{stage}']:.2f}" for stage in ("stream", "decode", "transform", "other"))
        lines.append(
            f"| {row['source']} | {draft} | {row['cores']} | {row['images']} | {row['images/s']:.1f} | "
            f"{row['images/s per core']:.1f} | {row['ms per image per core']:.2f} | {row['cpu ms per image']:.2f} | "
            f"{stages} | {row['bound by']} ({100 * row['bound share']:.0f} %) |"
        )
    lines.append("")
    for ratio in ratios:
        decoding = "draft" if ratio["ava_draft"] else "full"
        verdict = "meets" if min(ratio["wall"], ratio["cpu"]) >= 4 else "misses"
        lines.append(
            f"- {ratio['cores']} core(s), shards / AVA-size photos ({decoding} decoding), rate per core: "
            f"{ratio['wall']:.2f}x by wall time, {ratio['cpu']:.2f}x by CPU time ({verdict} the 4x goal)"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--images",
        type=int,
        default=1024,
        help="AVA-like photos (and shards made from them); OpenImages-like get half as many, camera photos 1/32",
    )
    parser.add_argument("--cores", type=int, nargs="+", default=[1, 2], help="worker processes of each row")
    parser.add_argument("--batch-size", type=int, default=32, help="largest batch (smaller for small counts)")
    parser.add_argument("--profile-images", type=int, default=256, help="images of each source in the profile")
    parser.add_argument("--repeats", type=int, default=2, help="passes per row; the best counts")
    parser.add_argument("--quick", action="store_true", help="a few images of each kind: checks that it runs")
    parser.add_argument("--work-dir", help="where the images go (default: a temporary folder)")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    if args.quick:
        args.images, args.profile_images, args.repeats = 8, 4, 1
    with tempfile.TemporaryDirectory() as tmp:
        work_dir = Path(args.work_dir or tmp)
        start = time.perf_counter()
        sources = {}
        rounds = 2 if args.quick else ROUNDS
        minimum = rounds * max(args.cores)
        for seed, size in enumerate(PHOTO_SIZES):
            count = max(minimum, round(args.images * size.share))
            folder = work_dir / f"photos-{size.long_sides[0]}"
            write_photos(folder, count, size.long_sides, seed)
            sources[size.name] = (str(folder), count)
        ava_folder, ava_count = sources[PHOTO_SIZES[0].name]
        shards = work_dir / "shards"
        shard(ava_folder, shards, CSKDImageProcessor(), rows_per_shard=ava_count, shard_multiple=1, progress=False)
        sources[SHARDS] = (str(shards), ava_count)
        print(f"wrote the images in {time.perf_counter() - start:.0f} s", flush=True)
        rows = measure(sources, args.cores, args.batch_size, args.profile_images, args.repeats, rounds)
    ratios = shard_ratios(rows)
    print(
        f"\nTraining input pipeline, CPU ({os.cpu_count()} cores here), one worker process per core, torch threads 1; "
        "CPU ms/img: workers and training process; stream (x workers), decode, transform: profiled in one thread:\n"
    )
    print(format_table(rows, ratios))
    if args.quick:
        print("\n--quick: a few images a row, so these figures only show that the script runs")
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu_count": os.cpu_count(), "rows": rows, "ratios": ratios}, indent=1))


if __name__ == "__main__":
    main()
