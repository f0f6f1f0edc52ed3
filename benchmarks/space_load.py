"""The Space under load: N concurrent `gradio_client` clients scoring and ranking on localhost for a bounded time.

The server is `spaces/app.py` in its own process, serving a MobileNetV2 scorer at 224 px (random weights: speed does
not depend on them) on photos re-rendered from scikit-image's bundled ones at 640 to 1024 px. Each client loops until
the time is up: most call `/score` with one photo, some `/rank` with 4 photos, and a few are hostile in turn (an
upload over the size limit, an image over the pixel limit, a ranking of too many files): those must get the app's
own message while everyone else is served. One row per server setting (gradio's concurrency limit and queue size, as
the Space reads them from `CSKD_CONCURRENCY` and `CSKD_MAX_QUEUE`).

    pip install -e .[demo]
    python benchmarks/space_load.py [--clients 20] [--seconds 60] [--concurrency 1 2] [--json results.json]

Latency is per call as a client sees it (upload, queue, decode, forward, reply). "peak RSS" is the server process's
high-water mark (VmHWM). CPU figures depend on the machine; compare rows of one run.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
HOSTILE = ("oversized upload", "too many pixels", "too many files")
# The server's limits in this benchmark (small enough that the hostile files stay small to write and send).
SERVER_LIMITS = {"CSKD_MAX_UPLOAD_MB": "2", "CSKD_MAX_PIXELS": "4000000", "CSKD_MAX_FILES": "8"}
EXPECTED_MESSAGE = {
    "oversized upload": "exceeds the maximum file size",
    "too many pixels": "the limit is 4,000,000 pixels",
    "too many files": "the limit is 8 per request",
}


def write_inputs(out_dir: Path) -> dict:
    """The model, 12 photos and the hostile files."""
    from PIL import Image

    from cskd_hf import CSKDConfig, CSKDForAestheticScoring, CSKDImageProcessor
    from cskd_hf.data.samples import SAMPLE_PHOTOS, sample_photo

    model = out_dir / "mv2-random"
    config = CSKDConfig(architecture="mobilenetv2_100", image_size=224)
    CSKDForAestheticScoring(config).save_pretrained(model)
    CSKDImageProcessor.from_model_config(config).save_pretrained(model)

    rng = np.random.default_rng(0)
    photos = []
    for index in range(12):
        name, _ = SAMPLE_PHOTOS[index % len(SAMPLE_PHOTOS)]
        image = Image.fromarray(sample_photo(name)).convert("RGB")
        long_side = int(rng.choice([640, 800, 1024]))
        scale = long_side / max(image.size)
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)
        photos.append(out_dir / f"photo_{index:02d}.jpg")
        image.save(photos[-1], quality=90)
    oversized = out_dir / "oversized.png"  # 3 MB of noise, over the 2 MB upload limit
    Image.fromarray(rng.integers(0, 256, size=(1000, 1000, 3), dtype=np.uint8)).save(oversized)
    too_many_pixels = out_dir / "too_many_pixels.png"  # 5000 x 1000 = 5 Mpx over 4 Mpx, a few kB on disk
    Image.new("L", (5000, 1000)).save(too_many_pixels)
    return {"model": model, "photos": photos, "oversized": oversized, "too_many_pixels": too_many_pixels}


def start_server(model: Path, concurrency: int, max_queue: int, log) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        **SERVER_LIMITS,
        "CSKD_CONCURRENCY": str(concurrency),
        "CSKD_MAX_QUEUE": str(max_queue),
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    command = [sys.executable, str(REPO / "spaces" / "app.py"), "--model", str(model), "--reference", ""]
    command += ["--port", str(port)]
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the Space exited with {server.returncode}; see its log")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return server, url
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise RuntimeError("the Space did not start within 180 s")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Tally:
    latencies: dict = field(default_factory=lambda: {"score": [], "rank": []})
    errors: list = field(default_factory=list)  # unexpected: a call that should have been served failed
    limits_held: dict = field(default_factory=lambda: dict.fromkeys(HOSTILE, 0))
    limits_broken: list = field(default_factory=list)  # a hostile call served, or refused with another message
    lock: threading.Lock = field(default_factory=threading.Lock)


def client_loop(url: str, index: int, inputs: dict, deadline: float, tally: Tally) -> None:
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    photos = inputs["photos"]
    role = "hostile" if index % 10 == 9 else "rank" if index % 5 == 4 else "score"
    calls = 0
    while time.monotonic() < deadline:
        calls += 1
        if role == "hostile":
            kind = HOSTILE[calls % len(HOSTILE)]
            try:
                if kind == "too many files":
                    client.predict([handle_file(str(p)) for p in photos[:9]], api_name="/rank")
                else:
                    path = inputs["oversized" if kind == "oversized upload" else "too_many_pixels"]
                    client.predict(handle_file(str(path)), api_name="/score")
            except Exception as error:  # gradio_client raises AppError or ValueError with the server's message
                with tally.lock:
                    if EXPECTED_MESSAGE[kind] in str(error):
                        tally.limits_held[kind] += 1
                    else:
                        tally.limits_broken.append(f"{kind}: {error}")
            else:
                with tally.lock:
                    tally.limits_broken.append(f"{kind}: served")
            continue
        start = time.perf_counter()
        try:
            if role == "rank":
                chosen = [photos[(calls + i) % len(photos)] for i in range(4)]
                client.predict([handle_file(str(p)) for p in chosen], api_name="/rank")
            else:
                client.predict(handle_file(str(photos[(index + calls) % len(photos)])), api_name="/score")
        except Exception as error:
            with tally.lock:
                tally.errors.append(f"{role}: {error}")
            continue
        with tally.lock:
            tally.latencies[role].append(time.perf_counter() - start)


def run_setting(inputs: dict, clients: int, seconds: float, concurrency: int, max_queue: int, log) -> dict:
    server, url = start_server(inputs["model"], concurrency, max_queue, log)
    try:
        tally = Tally()
        start = time.monotonic()
        deadline = start + seconds
        threads = [
            threading.Thread(target=client_loop, args=(url, index, inputs, deadline, tally))
            for index in range(clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - start
        peak = peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=60)
    row = {"concurrency": concurrency, "max_queue": max_queue, "clients": clients, "seconds": round(elapsed, 1)}
    for role, latencies in tally.latencies.items():
        values = np.asarray(latencies) * 1000
        row[f"{role}_calls"] = len(values)
        row[f"{role}_p50_ms"] = float(np.percentile(values, 50)) if len(values) else float("nan")
        row[f"{role}_p95_ms"] = float(np.percentile(values, 95)) if len(values) else float("nan")
    row["images_per_s"] = (row["score_calls"] + 4 * row["rank_calls"]) / elapsed
    row["errors"] = len(tally.errors)
    row["limits_held"] = sum(tally.limits_held.values())
    row["limits_broken"] = len(tally.limits_broken)
    row["peak_rss_mb"] = peak
    row["examples"] = {"errors": tally.errors[:3], "limits_broken": tally.limits_broken[:3]}
    return row


def format_table(rows: list[dict]) -> str:
    header = (
        "| concurrency | queue | clients | score calls | score p50 / p95 (ms) | rank calls | rank p50 / p95 (ms) "
        "| images/s | errors | limits held / broken | server peak RSS (MB) |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for row in rows:
        lines.append(
            f"| {row['concurrency']} | {row['max_queue']} | {row['clients']} | {row['score_calls']} "
            f"| {row['score_p50_ms']:.0f} / {row['score_p95_ms']:.0f} | {row['rank_calls']} "
            f"| {row['rank_p50_ms']:.0f} / {row['rank_p95_ms']:.0f} | {row['images_per_s']:.1f} | {row['errors']} "
            f"| {row['limits_held']} / {row['limits_broken']} | {row['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60, help="how long the clients call, per setting")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2], help="gradio concurrency limits to try")
    parser.add_argument("--max-queue", type=int, default=64, help="gradio queue size (CSKD_MAX_QUEUE)")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        inputs = write_inputs(Path(tmp))
        rows = []
        with open(Path(tmp) / "server.log", "w") as log:
            for concurrency in args.concurrency:
                rows.append(run_setting(inputs, args.clients, args.seconds, concurrency, args.max_queue, log))
                print(format_table(rows[-1:]).splitlines()[-1], flush=True)
    print(f"\n{args.clients} clients for {args.seconds:g} s per setting; 1 in 10 hostile, 1 in 10 ranking 4 photos\n")
    print(format_table(rows))
    for row in rows:
        if row["errors"] or row["limits_broken"]:
            print(f"concurrency {row['concurrency']}: {row['examples']}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
