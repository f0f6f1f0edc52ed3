"""`cskd_hf.hub`: the model cards (their metadata, the templates shipped with the package, the model-index at
full precision) and `cskd push`'s upload of exactly the model files (without network)."""

import logging
from importlib.resources import files
from pathlib import Path

from huggingface_hub import HfApi, ModelCard
from transformers import AutoImageProcessor, AutoModelForImageClassification

from cskd_hf.cli import main
from cskd_hf.convert import SOURCES, converted_card
from cskd_hf.hub import model_card, save_card
from cskd_hf.runtime.graph_cache import source_hashes
from cskd_hf.runtime.spec import ScoringSpec


def measured():
    return {"n": 2000, "mse": 0.2311, "srcc": 0.7123, "plcc": 0.7345, "accuracy": 0.851, "ier": {}}


def test_card_metadata_round_trips_with_the_measured_numbers(tiny_scorer_dir, tmp_path):
    config = AutoModelForImageClassification.from_pretrained(tiny_scorer_dir).config
    card = model_card(
        config,
        "Tiny test scorer",
        "For tests.",
        {"learning_rate": 1e-4},
        measured(),
        dataset_name="SynthAVA",
        dataset_id="local/synthava",
        split="test",
        plots=["ier.png"],
        synthetic=True,
    )
    save_card(card, tmp_path)
    loaded = ModelCard.load(tmp_path / "README.md")
    data = loaded.data.to_dict()
    assert data["library_name"] == "transformers" and data["pipeline_tag"] == "image-classification"
    assert "synthetic" in data["tags"] and data["datasets"] == ["local/synthava"]
    values = {result.metric_type: result.metric_value for result in loaded.data.eval_results}
    assert values == {"srcc": 0.7123, "plcc": 0.7345, "mse": 0.2311, "accuracy": 0.851}
    assert {result.dataset_split for result in loaded.data.eval_results} == {"test"}
    text = loaded.text
    assert "never seen a real photograph" in text and "![ier](ier.png)" in text
    assert "trust_remote_code=True" in text and "Limitations" in text and "xu2023clip" in text


def test_card_templates_ship_with_the_package_and_render_parseable_metadata(tiny_scorer_dir):
    """The cards are rendered from the package's Jinja templates; their YAML front matter reads back as card data."""
    templates = files("cskd_hf") / "templates"
    assert (templates / "model_card.md").is_file() and (templates / "converted_card.md").is_file()
    config = AutoModelForImageClassification.from_pretrained(tiny_scorer_dir).config
    for metrics in (None, measured()):
        card = ModelCard(str(model_card(config, "Tiny", "For tests.", metrics=metrics, dataset_name="toy")))
        data = card.data.to_dict()
        assert data["library_name"] == "transformers" and data["pipeline_tag"] == "image-classification"
        assert ("model-index" in data) == (metrics is not None)
        assert "{{" not in card.text and "{%" not in card.text and "# Tiny" in card.text
    values = {result.metric_type: result.metric_value for result in card.data.eval_results}
    assert values == {"srcc": 0.7123, "plcc": 0.7345, "mse": 0.2311, "accuracy": 0.851}
    for kind, source in SOURCES.items():
        card = ModelCard(str(converted_card(config, kind, "weights.pth")))
        assert card.data.library_name == "transformers" and card.data.pipeline_tag == "image-classification"
        assert card.data.license == source["license"] and kind in card.data.tags
        assert f"cskd convert {kind} weights.pth" in card.text and source["citation"] in card.text


def test_push_uploads_exactly_the_model_files(tiny_scorer_dir, tmp_path, monkeypatch, caplog):
    """Intercepts the upload at huggingface_hub's HfApi: checks the files of the one commit and its arguments."""
    folder = tmp_path / "model"
    model = AutoModelForImageClassification.from_pretrained(tiny_scorer_dir)
    model.save_pretrained(folder)
    AutoImageProcessor.from_pretrained(tiny_scorer_dir).save_pretrained(folder)
    save_card(model_card(model.config, "Tiny", "For tests.", metrics=measured(), dataset_name="toy"), folder)
    (folder / "ier.png").write_bytes(b"\x89PNG fake plot")
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "optimizer.bin").write_bytes(b"not for the hub")
    (folder / "onnx").mkdir()
    (folder / "onnx" / "model.onnx").write_bytes(b"an exported graph")
    (folder / "onnx" / "model.onnx.data").write_bytes(b"its external weights")
    # as `cskd export` leaves it: the spec records the folder's files
    ScoringSpec.from_model_folder(folder).with_sources(source_hashes(folder)).save(folder / "onnx" / "spec.json")
    # What else a training folder holds, or a user leaves in it: none of it may reach the Hub.
    for secret in (".env", "token", ".huggingface/token", "onnx/token", "logs/events.out.tfevents.1", "train.log"):
        (folder / secret).parent.mkdir(parents=True, exist_ok=True)
        (folder / secret).write_text("hf_notforthehub")
    (folder / "best").mkdir()
    (folder / "best" / "model.safetensors").write_bytes(b"another copy of weights")

    calls = {}

    def create_repo(self, repo_id, private=False, exist_ok=False, **kwargs):
        calls["create_repo"] = {"repo_id": repo_id, "private": private, "exist_ok": exist_ok}

    def create_branch(self, repo_id, branch, exist_ok=False, **kwargs):
        calls["create_branch"] = {"repo_id": repo_id, "branch": branch}

    def upload_folder(self, repo_id, folder_path, revision=None, commit_message=None, **kwargs):
        files = sorted(str(p.relative_to(folder_path)) for p in Path(folder_path).rglob("*") if p.is_file())
        calls["upload_folder"] = {"repo_id": repo_id, "revision": revision, "files": files}
        if (Path(folder_path) / "onnx" / "spec.json").exists():  # the uploaded spec names the uploaded files
            spec = ScoringSpec.load(Path(folder_path) / "onnx" / "spec.json")
            calls["spec_matches_upload"] = spec.source_files == source_hashes(folder_path)
        return "https://huggingface.co/me/tiny/commit/abc"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "create_branch", create_branch)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    args = ["push", "--model", str(folder), "--repo-id", "me/tiny", "--private", "--revision", "v1"]
    assert main(args) == 0

    assert calls["create_repo"] == {"repo_id": "me/tiny", "private": True, "exist_ok": True}
    assert calls["create_branch"] == {"repo_id": "me/tiny", "branch": "v1"}
    assert calls["upload_folder"]["repo_id"] == "me/tiny" and calls["upload_folder"]["revision"] == "v1"
    assert calls["upload_folder"]["files"] == [
        "README.md",
        "config.json",
        "configuration_cskd.py",
        "ier.png",
        "image_processing_cskd.py",
        "model.safetensors",
        "modeling_cskd.py",
        "onnx/model.onnx",
        "onnx/model.onnx.data",
        "onnx/spec.json",
        "preprocessor_config.json",
    ]
    assert calls["spec_matches_upload"]

    # A graph exported before the weights changed (or by an older cskd-hf, without a spec) stays home.
    ScoringSpec.from_model_folder(folder).with_sources({"model.safetensors": "earlier weights"}).save(
        folder / "onnx" / "spec.json"
    )
    with caplog.at_level(logging.WARNING, logger="cskd_hf.hub"):
        assert main(args) == 0
    assert not any(name.startswith("onnx/") for name in calls["upload_folder"]["files"])
    assert "not uploaded: its graphs were not exported from the folder's current files" in caplog.text


def test_model_index_holds_the_measured_metrics_at_full_precision(tiny_scorer_dir, tmp_path):
    config = AutoModelForImageClassification.from_pretrained(tiny_scorer_dir).config
    metrics = {"n": 10, "mse": 0.123456789, "srcc": 0.7012345678, "plcc": 0.69999, "accuracy": 0.8125, "ier": {}}
    dataset = tmp_path / "data" / "synthava"
    dataset.mkdir(parents=True)
    card = model_card(config, "T", "S", {"dataset": str(dataset)}, metrics, dataset_name=str(dataset), split="test")
    save_card(card, tmp_path)
    loaded = ModelCard.load(tmp_path / "README.md")
    assert {r.metric_type: r.metric_value for r in loaded.data.eval_results} == {
        key: metrics[key] for key in ("srcc", "plcc", "mse", "accuracy")
    }
    assert {r.dataset_name for r in loaded.data.eval_results} == {"synthava"}  # the folder's name, not its path
    assert str(tmp_path) not in loaded.content
