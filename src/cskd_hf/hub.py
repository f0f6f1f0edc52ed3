"""Model cards (the README.md the Hub shows) and pushing a model folder to the Hub."""

import logging
import os
import shutil
import tempfile
from importlib.resources import files
from pathlib import Path

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData

from .metrics import metric_scale
from .runtime.graph_cache import source_hashes
from .runtime.spec import SPEC_FILE, ScoringSpec

logger = logging.getLogger(__name__)

# The Jinja templates of the cards (`ModelCard.from_template`), shipped as package data.
TEMPLATES = files(__package__) / "templates"

METRIC_NAMES = {"srcc": "SRCC", "plcc": "PLCC", "mse": "MSE", "accuracy": "Binary accuracy"}
# Files of a model folder that go to the Hub besides what `save_pretrained` writes.
EXTRA_FILES = ("README.md", "metrics.json", "results.md", "results.json")
ONNX_FILES = ("*.onnx", "*.onnx.data")


def public_name(value):
    """A value fit for a card on the Hub: a local path (or a `loader:path` source) becomes its last part, so that no
    folder of the machine that trained the model is published; anything else is returned as it is."""
    if isinstance(value, (list, tuple)):
        return [public_name(item) for item in value]
    if not isinstance(value, (str, os.PathLike)):
        return value
    text = str(value)
    prefix, _, rest = (
        text.rpartition(":") if ":" in text and not text.startswith(("http://", "https://")) else ("", "", text)
    )
    if os.path.isabs(rest) or (os.sep in rest and Path(rest).exists()):
        return f"{prefix}:{Path(rest).name}" if prefix else Path(rest).name
    return value


def _eval_results(metrics: dict, dataset_name, dataset_id, split: str) -> list[EvalResult] | None:
    """The `model-index` entries of the measured metrics, if the dataset they were measured on has a name."""
    if not (metrics and dataset_name):
        return None
    return [
        EvalResult(
            task_type="image-classification",
            task_name="Image aesthetics assessment",
            dataset_type=dataset_id or dataset_name,
            dataset_name=dataset_name,
            dataset_split=split,
            metric_type=key,
            metric_name=name,
            metric_value=float(metrics[key]),
        )
        for key, name in METRIC_NAMES.items()
        if isinstance(metrics.get(key), (int, float))
    ]


def _backbone(config, architecture: str) -> tuple[str, list[str], str | None]:
    """How the card names the backbone, the tags it brings, and the Hub model it was fine-tuned from (if any)."""
    if config.backbone_type == "clip":
        # A Hub id names the CLIP the tower came from; a local folder's name names nothing on the Hub.
        base_model = architecture if "/" in architecture else None
        return f"the image tower of CLIP `{architecture}`", ["image-aesthetics", "cskd", "clip"], base_model
    # A timm Hub id (architecture.tag) is the base model only when its ImageNet weights were loaded.
    base_model = f"timm/{architecture}" if config.backbone_pretrained and "." in architecture else None
    return f"a timm `{architecture}` backbone", ["image-aesthetics", "cskd", "timm", architecture], base_model


def _results(metrics: dict, bin_scores) -> dict:
    """What the card's Results section shows: the float metrics' rows (None: no evaluation), the number of images and
    the scale-dependent thresholds, and whether they are AVA's, scaled to the bins' range."""
    rows = [(METRIC_NAMES.get(key, key), value) for key, value in metrics.items() if isinstance(value, float)]
    scale = metrics.get("scale") if isinstance(metrics.get("scale"), dict) else None
    return {
        "results": rows if metrics else None,
        "n": metrics["n"] if isinstance(metrics.get("n"), int) else None,
        "scale": scale,
        "scaled": scale == metric_scale(bin_scores),
    }


def model_card(
    config,
    title: str,
    summary: str,
    hyperparameters: dict | None = None,
    metrics: dict | None = None,
    dataset_name: str | None = None,
    dataset_id: str | None = None,
    split: str = "validation",
    plots: list[str] = (),
    synthetic: bool = False,
    license: str = "apache-2.0",
) -> ModelCard:
    """A complete model card (`templates/model_card.md`): YAML metadata (with a `model-index` of the measured
    metrics), usage, training, results, plots, limitations and citations. Local paths among the names and
    hyper-parameters are shortened to their last part (`public_name`)."""
    dataset_name, dataset_id = public_name(dataset_name), public_name(dataset_id)
    metrics = metrics or {}
    # Configs saved before 0.1 named a local CLIP by its path.
    backbone, tags, base_model = _backbone(config, public_name(config.architecture))
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag="image-classification",
        tags=tags + (["synthetic"] if synthetic else []),
        license=license,
        datasets=[dataset_id] if dataset_id else None,
        base_model=base_model,
        model_name=title,
        eval_results=_eval_results(metrics, dataset_name, dataset_id, split),
    )
    return ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATES / "model_card.md"),
        title=title,
        summary=summary,
        synthetic=synthetic,
        backbone=backbone,
        image_size=config.image_size,
        num_bins=config.num_bins,
        scalar_head=config.score_head == "scalar",
        low=config.bin_scores[0],
        high=config.bin_scores[-1],
        hyperparameters=sorted({key: public_name(value) for key, value in (hyperparameters or {}).items()}.items()),
        **_results(metrics, config.bin_scores),
        split=split,
        dataset_name=dataset_name,
        figures=[(Path(plot).stem, Path(plot).name) for plot in plots],
    )


def save_card(card: ModelCard, out_dir: str | os.PathLike) -> None:
    card.save(Path(out_dir) / "README.md")


def stage_graphs(model_dir: Path, staging: Path) -> None:
    """Copy the graphs of `cskd export` (and their external weights) into the staging folder with their spec, whose
    hashes are then the staged files', so that `cskd score` runs them without torch. By name, so that nothing else a
    user keeps in `onnx/` (a token, a log) goes with them; and only graphs whose spec says they were exported from the
    folder's current files: a stale graph on the Hub would score every user's photos with other weights."""
    graph = model_dir / "onnx" / "model.onnx"
    if not graph.is_file():
        return
    spec_path = graph.parent / SPEC_FILE
    spec = ScoringSpec.load(spec_path) if spec_path.is_file() else None
    if spec is None or spec.source_files != source_hashes(model_dir):
        logger.warning(f"{graph.parent} not uploaded: its graphs were not exported from the folder's current files "
                       "(or by an older cskd-hf); run `cskd export` again to include them")  # fmt: skip
        return
    (staging / "onnx").mkdir(exist_ok=True)
    for pattern in ONNX_FILES:
        for path in sorted(graph.parent.glob(pattern)):
            shutil.copy2(path, staging / "onnx")
    spec.with_sources(source_hashes(staging)).save(staging / "onnx" / SPEC_FILE)


def push_to_hub(
    model_dir: str | os.PathLike,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    commit_message: str = "Upload CSKD aesthetics model",
    token: str | None = None,
) -> str:
    """Upload a model folder: weights, config, image processor, the modeling code `trust_remote_code` needs, the card,
    plots, metrics and the ONNX graphs of `cskd export`, in one commit from a staging folder. Returns the commit URL.

    The model is re-saved into the staging folder, so the modeling code is always included and nothing else of the
    output folder (checkpoints, logs) is uploaded.
    """
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    from .models import cskd  # noqa: F401  (registers the CSKD classes with these Auto classes)

    model_dir = Path(model_dir)
    model = AutoModelForImageClassification.from_pretrained(model_dir)
    image_processor = AutoImageProcessor.from_pretrained(model_dir)
    api = HfApi(token=token)
    with tempfile.TemporaryDirectory() as staging:
        model.save_pretrained(staging)
        image_processor.save_pretrained(staging)
        for path in model_dir.iterdir():
            if path.is_file() and (path.name in EXTRA_FILES or path.suffix == ".png"):
                shutil.copy2(path, staging)
        stage_graphs(model_dir, Path(staging))
        if not (Path(staging) / "README.md").exists():
            title = f"CSKD aesthetics model ({model.config.architecture})"
            save_card(model_card(model.config, title, "A CSKD image aesthetics model."), staging)
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id, folder_path=staging, revision=revision, commit_message=commit_message
        )
    return str(getattr(commit, "commit_url", commit))


__all__ = ["model_card", "push_to_hub", "save_card"]
