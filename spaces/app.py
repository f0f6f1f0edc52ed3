"""Gradio Space for CSKD image aesthetics models: score, compare and rank photos in the browser.

    python spaces/app.py [--model DIR_OR_HUB_ID ...] [--reference DATASET] [--host HOST] [--port PORT]
                         [--device-page URL]

Models come from `--model` or the `CSKD_MODELS` environment variable (comma-separated Hub ids or folders); by default
the quickstart's CSKD student and its teacher. On a Hugging Face Space there is no quickstart output: set
`CSKD_MODELS` in the Space's settings. The address is gradio's own: `GRADIO_SERVER_NAME` and `GRADIO_SERVER_PORT`
(which Spaces set), unless `--host`/`--port` are given. The named API endpoints `/score`, `/compare` and `/rank`
serve `gradio_client` users. Scores are those of cskd-hf's `image-aesthetics` pipeline.

The page links to "score on your device": the first model in the browser with onnxruntime-web (`cskd export --web`),
nothing uploaded. By default the Space writes that static page at start and serves it itself; `--device-page URL`
(or `CSKD_DEVICE_PAGE`) links to one hosted elsewhere instead, e.g. a static Space of `cskd export --web`'s output.
"""

import argparse
import csv
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
from PIL import Image
from transformers import pipeline

from cskd_hf.data.images import ImageReadError, open_image
from cskd_hf.data.prepare import load_labeled
from cskd_hf.inference.pipeline import TASK

logger = logging.getLogger(__name__)

DEFAULT_MODELS = ["outputs/quickstart/models/cskd-student", "outputs/quickstart/models/cfa-teacher-scorer"]
DEFAULT_REFERENCE = "outputs/quickstart/synthava"
# Photographs from scikit-image's data (public domain or CC0), shipped with the Space as its examples.
EXAMPLES = sorted((Path(__file__).parent / "examples").glob("*.jpg"))


@dataclass
class Limits:
    """What one request may send; all configurable through the environment for a deployed Space."""

    max_upload_mb: float = float(os.environ.get("CSKD_MAX_UPLOAD_MB", 20))
    max_pixels: int = int(os.environ.get("CSKD_MAX_PIXELS", 40_000_000))
    max_files: int = int(os.environ.get("CSKD_MAX_FILES", 32))
    # Requests computed at once, over all endpoints. One: a forward pass already uses every core (ONNX Runtime's or
    # torch's threads), and two or four at once were slower under 20 clients (benchmarks/space_load.py, figures in
    # docs/speed.md, measured with the PyTorch model).
    concurrency: int = int(os.environ.get("CSKD_CONCURRENCY", 1))
    # Requests waiting beyond those; more are refused at once ("queue is full") instead of piling up in memory.
    max_queue: int = int(os.environ.get("CSKD_MAX_QUEUE", 64))

    def launch_options(self) -> dict:
        """`demo.launch` arguments that enforce these limits (the upload size is checked by gradio as it receives)."""
        return {"max_file_size": f"{self.max_upload_mb:g}mb", "show_error": True}


class Scorers:
    """The models as `image-aesthetics` pipelines, scoring one PIL image at a time (a Space serves one visitor's photo
    per request). On the CPU, the pipeline's default backend runs each model as its ONNX graph in ONNX Runtime
    (exported once at start-up, then cached), or as the PyTorch model where the export fails."""

    def __init__(self, model_paths: list[str]):
        self.pipelines = {_short_name(path): pipeline(TASK, model=path, device="cpu") for path in model_paths}
        self.synthetic = any(_is_synthetic(path) for path in model_paths)

    @property
    def names(self) -> list[str]:
        return list(self.pipelines)

    @property
    def bin_labels(self) -> list[str]:
        """The first model's scale, for the plot of its predicted distribution."""
        return [f"{b:g}" for b in self.pipelines[self.names[0]].model.config.bin_scores]

    @property
    def draft_size(self) -> int | None:
        """Large JPEGs decode at a reduced size still covering every model's resize, as `cskd score` decodes (in full
        when a model's processor says so: converted predictors decode as their originals do)."""
        sizes = [scorer.image_processor.draft_size() for scorer in self.pipelines.values()]
        return None if None in sizes else max(sizes)

    def score(self, image: Image.Image, name: str | None = None) -> dict:
        """The pipeline's `score`, `std` and `distribution`, and the call's `latency_ms`."""
        start = time.perf_counter()
        result = self.pipelines[name or self.names[0]](image)
        return {**result, "latency_ms": 1000 * (time.perf_counter() - start)}


def _short_name(path: str) -> str:
    return Path(str(path).rstrip("/")).name or str(path)


def _is_synthetic(path: str) -> bool:
    card = Path(path) / "README.md"
    return card.exists() and "synthetic" in card.read_text(encoding="utf-8").lower()


def read_upload(path: str | None, limits: Limits, draft_size: int | None = None) -> Image.Image:
    """Open an uploaded file (see `open_image` for `draft_size`), or raise a `gr.Error` the page shows instead of a
    stack trace."""
    if not path:
        raise gr.Error("Please upload an image first.")
    name = Path(path).name
    size_mb = os.path.getsize(path) / 1e6
    if size_mb > limits.max_upload_mb:
        raise gr.Error(f"{name} is {size_mb:.1f} MB; the limit is {limits.max_upload_mb:g} MB.")
    try:
        with Image.open(path) as probe:
            width, height = probe.size
    except (OSError, ValueError, Image.DecompressionBombError):
        raise gr.Error(f"{name} is not an image this page can read.") from None
    if width * height > limits.max_pixels:
        raise gr.Error(f"{name} has {width}x{height} pixels; the limit is {limits.max_pixels:,} pixels.")
    try:
        return open_image(path, draft_size=draft_size)
    except ImageReadError as error:
        raise gr.Error(f"{name} cannot be read: {str(error).split(': ', 1)[-1]}") from None


class PhotoInput(gr.Image):
    """An image box that shows the upload and hands the file's path to the app, which reads it itself (limits,
    draft decoding); a file that is not an image gets the page's plain message instead of gradio's trace."""

    is_template = True  # the browser side is gr.Image's (gradio reads the props from gr.Image's signature)

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except (OSError, ValueError, Image.DecompressionBombError):
            name = Path(payload.orig_name or payload.path or "the file").name
            raise gr.Error(f"{name} is not an image this page can read.") from None


def photo_input(**kwargs) -> PhotoInput:
    """The app's image box. With `type="filepath", image_mode=None` gradio only opens the file's header and passes
    the upload on as it is, so the app's own limits apply before any decoding and scores equal `cskd score`'s."""
    return PhotoInput(type="filepath", image_mode=None, sources=["upload", "clipboard"], **kwargs)


def percentile_reading(score: float, std: float, reference: np.ndarray | None) -> str:
    reading = f"**{score:.2f} ± {std:.2f}**"
    if reference is not None and len(reference):
        below = 100.0 * float(np.mean(reference < score))
        reading += f" — above {below:.0f}% of the test set"
    return reading


def load_reference(dataset: str | None) -> np.ndarray | None:
    """True mean scores of a labeled test split, for the "above N% of the test set" reading."""
    if not dataset or not Path(dataset).exists():
        return None
    return np.asarray(load_labeled(dataset)["test"]["mean_score"], dtype=np.float64)


def build_demo(
    model_paths: list[str],
    reference: np.ndarray | None = None,
    limits: Limits | None = None,
    examples: list[str | Path] = (),
    device_page: str | None = None,
) -> gr.Blocks:
    """The Space's page, without launching it (tests call the functions and launch it on localhost). `device_page`:
    the URL of the on-device page to link to (`write_device_page`)."""
    scorers = Scorers(model_paths)
    limits = limits or Limits()
    bin_labels = scorers.bin_labels
    # Every endpoint runs the models, so they share one concurrency limit (gradio's default is one per endpoint).
    one_queue = {"concurrency_limit": limits.concurrency, "concurrency_id": "models"}
    with gr.Blocks(title="CSKD image aesthetics") as demo:
        gr.Markdown(_introduction(scorers))
        if device_page:
            gr.Markdown(
                f"[**Score on your device**]({device_page}): the same model runs in your browser (onnxruntime-web); "
                "your photos are not uploaded.",
                elem_id="device-page",
            )
        with gr.Tab("Score"):
            _score_tab(scorers, limits, reference, bin_labels, examples, one_queue)
        with gr.Tab("Compare"):
            _compare_tab(scorers, limits, one_queue)
        with gr.Tab("Rank"):
            _rank_tab(scorers, limits, one_queue)
    return demo.queue(default_concurrency_limit=limits.concurrency, max_size=limits.max_queue)


def write_device_page(model: str, out_dir: str | Path | None = None) -> str | None:
    """Write `model`'s on-device page (`cskd export --web`: its ONNX graph, exported once into the graph cache if
    needed) and let gradio serve its folder; the page's URL, or None (logged) when it cannot be made."""
    from cskd_hf.cli.export import graph_for_any_batch
    from cskd_hf.runtime.scoring import resolve_model_folder
    from cskd_hf.runtime.web import write_web_page

    try:
        graph = graph_for_any_batch(resolve_model_folder(model))
        out_dir = Path(out_dir or tempfile.mkdtemp(prefix="cskd-device-page-")).resolve()
        page = write_web_page(graph, out_dir, title=f"Aesthetic scores: {_short_name(model)}", model=model)
    except (OSError, ValueError, RuntimeError) as error:
        logger.warning(f"no on-device page for {model}: {error}")
        return None
    gr.set_static_paths([out_dir])
    return f"/gradio_api/file={page}"


def _introduction(scorers: Scorers) -> str:
    """The page's heading: what it predicts, with which models, and a warning for models trained on synthetic data."""
    warning = (
        "\n\n> ⚠️ These models were trained on **SynthAVA, a synthetic dataset**: they have never seen a real "
        "photograph, and their scores say nothing about real photos. They demonstrate the method."
        if scorers.synthetic
        else ""
    )
    return (
        "# CSKD image aesthetics\nPredicts how people would rate a photo's aesthetics: the distribution of their "
        f"votes and its mean. Models: {', '.join(f'`{n}`' for n in scorers.names)}.{warning}"
    )


def _score_tab(
    scorers: Scorers,
    limits: Limits,
    reference: np.ndarray | None,
    bin_labels: list[str],
    examples: list[str | Path],
    one_queue: dict,
) -> None:
    """The Score tab and its `/score` endpoint: one photo's score, read against `reference`, and its distribution."""

    def score(path):
        result = scorers.score(read_upload(path, limits, scorers.draft_size))
        bars = pd.DataFrame({"score": bin_labels, "probability": result["distribution"]})
        public = {key: result[key] for key in ("score", "std", "distribution")}
        return percentile_reading(result["score"], result["std"], reference), bars, public

    with gr.Row():
        with gr.Column():
            image = photo_input(label="Your photo", height=360, elem_id="photo")
        with gr.Column():
            reading = gr.Markdown(elem_id="score-reading")
            bars = gr.BarPlot(
                x="score",
                y="probability",
                title="Predicted vote distribution",
                y_lim=[0, 1],
                sort=bin_labels,  # the scale's order, not the labels' alphabetical one
                elem_id="score-plot",
            )
            details = gr.JSON(label="Result", visible=False)
    score_button = gr.Button("Score", variant="primary", elem_id="score-button")
    score_button.click(score, inputs=image, outputs=[reading, bars, details], api_name="score", **one_queue)
    if examples:
        gr.Examples(examples=[[str(path)] for path in examples], inputs=image, label="Examples")


def _compare_tab(scorers: Scorers, limits: Limits, one_queue: dict) -> None:
    """The Compare tab and its `/compare` endpoint: every model's score and latency on one photo."""

    def compare(path):
        image = read_upload(path, limits, scorers.draft_size)
        rows = []
        for name in scorers.names:
            result = scorers.score(image, name)
            rows.append([name, round(result["score"], 3), round(result["std"], 3), round(result["latency_ms"], 1)])
        return pd.DataFrame(rows, columns=["model", "score", "std", "latency (ms)"])

    compare_image = photo_input(label="Photo", height=320)
    compare_button = gr.Button("Compare models", variant="primary")
    comparison = gr.Dataframe(label="Every model on this photo")
    compare_button.click(compare, inputs=compare_image, outputs=comparison, api_name="compare", **one_queue)


def _rank_tab(scorers: Scorers, limits: Limits, one_queue: dict) -> None:
    """The Rank tab and its `/rank` endpoint: several photos, best first, as a gallery and a CSV file; the files
    that cannot be read are skipped and named."""

    def rank(paths):
        if not paths:
            raise gr.Error("Please upload some images first.")
        if len(paths) > limits.max_files:
            raise gr.Error(f"{len(paths)} files: the limit is {limits.max_files} per request.")
        scored, problems = [], []
        for path in paths:
            try:
                result = scorers.score(read_upload(path, limits, scorers.draft_size))
            except gr.Error as error:
                problems.append(str(error.message))
                continue
            scored.append((path, result["score"], result["std"]))
        if not scored:
            raise gr.Error("None of the files could be read: " + " ".join(problems))
        scored.sort(key=lambda item: item[1], reverse=True)
        csv_path = _ranking_csv(scored)
        gallery = [(path, f"#{i}  {value:.2f}") for i, (path, value, _) in enumerate(scored, start=1)]
        ranking = [{"file": Path(path).name, "score": value, "std": std} for path, value, std in scored]
        note = ("Skipped: " + " ".join(problems)) if problems else ""
        return gallery, csv_path, ranking, note

    files = gr.File(file_count="multiple", file_types=["image"], label=f"Up to {limits.max_files} photos")
    rank_button = gr.Button("Rank", variant="primary")
    gallery = gr.Gallery(label="Best first", columns=4)
    download = gr.File(label="Ranking (CSV)")
    ranking = gr.JSON(label="Ranking", visible=False)
    skipped = gr.Markdown()
    rank_button.click(rank, inputs=files, outputs=[gallery, download, ranking, skipped], api_name="rank", **one_queue)


def _ranking_csv(scored: list[tuple[str, float, float]]) -> str:
    """Write `(path, score, std)` rows, best first, as a CSV file for the visitor to download; returns its path."""
    table = tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False, newline="")
    with table:
        writer = csv.writer(table)
        writer.writerow(["rank", "file", "score", "std"])
        for position, (path, value, std) in enumerate(scored, start=1):
            writer.writerow([position, Path(path).name, f"{value:.4f}", f"{std:.4f}"])
    return table.name


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="model folder or Hub id (repeatable); env CSKD_MODELS")
    parser.add_argument("--reference", default=os.environ.get("CSKD_REFERENCE", DEFAULT_REFERENCE))
    # Left unset, gradio reads GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (127.0.0.1:7860 when those are unset too).
    parser.add_argument("--host", default=None, help="address to serve on (default: gradio's, from the environment)")
    parser.add_argument("--port", type=int, default=None, help="port (default: gradio's, from the environment)")
    parser.add_argument(
        "--device-page",
        default=os.environ.get("CSKD_DEVICE_PAGE"),
        help="URL of the on-device page to link to (default: the first model's, written and served by the Space)",
    )
    args = parser.parse_args()
    models = args.model or [m for m in os.environ.get("CSKD_MODELS", "").split(",") if m] or DEFAULT_MODELS
    missing = [m for m in models if m.startswith("outputs/") and not Path(m).exists()]
    if missing:
        raise SystemExit(
            f"{', '.join(missing)} not found: run `make quickstart` first, pass --model, or set CSKD_MODELS to Hub ids"
        )
    limits = Limits()
    device_page = args.device_page or write_device_page(models[0])
    demo = build_demo(models, load_reference(args.reference), limits, EXAMPLES, device_page)
    # show_error (in the limits' options): API clients get the same plain message (gr.Error) that the page shows.
    demo.launch(server_name=args.host, server_port=args.port, **limits.launch_options())


if __name__ == "__main__":
    main()
