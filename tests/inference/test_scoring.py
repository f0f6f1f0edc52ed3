"""`cskd_hf.inference.scoring`: `cskd score`'s backends (the default cached ONNX graph, `--backend onnxruntime`,
PyTorch) and the fallback between them, fixed-batch graphs, and the scoring loop's workers and batches."""

import csv
import logging
import shutil

import numpy as np
import pytest
import torch

from cskd_hf.cli import main
from cskd_hf.data.images import open_image
from cskd_hf.inference import export, scoring
from cskd_hf.inference.export import onnx_path
from cskd_hf.inference.scoring import OnnxScorer, TorchScorer, fast_scorer, load_scorer, score_files
from cskd_hf.runtime.graph_cache import graph_cache_key, source_hashes
from cskd_hf.runtime.spec import ScoringSpec

pytest.importorskip("onnxruntime")


def scores_csv(path) -> dict[str, dict]:
    return {row["path"]: row for row in csv.DictReader(open(path))}


def test_cli_onnxruntime_backend_matches_torch_and_keeps_errors(exported_dir, photos, tmp_path):
    for backend in ("torch", "onnxruntime"):
        output = tmp_path / f"{backend}.csv"
        command = ["score", str(photos), "--model", str(exported_dir), "--backend", backend, "--output", str(output)]
        batch = ["--batch-size", "4"] if backend == "torch" else []  # onnxruntime: its default batch size
        assert main([*command, "--no-progress", *batch]) == 0
    torch_rows, onnx_rows = scores_csv(tmp_path / "torch.csv"), scores_csv(tmp_path / "onnxruntime.csv")
    assert list(torch_rows) == list(onnx_rows)  # same files, same order
    errors = [path for path, row in onnx_rows.items() if row["error"]]
    assert sorted(path.rsplit("/", 1)[1] for path in errors) == ["empty.jpg", "text.jpg", "truncated.jpg"]
    for path, row in onnx_rows.items():
        if not row["error"]:
            for column in row:
                if column.startswith("p_") or column in ("score", "std"):
                    assert float(row[column]) == pytest.approx(float(torch_rows[path][column]), abs=1e-4)


def test_fixed_batch_graph_pads_the_last_batch(exported_dir, photos, tmp_path):
    fixed_dir = tmp_path / "fixed"
    shutil.copytree(exported_dir, fixed_dir)
    assert main(["export", "--model", str(fixed_dir), "--batch-size", "4"]) == 0
    scorer = OnnxScorer(onnx_path(fixed_dir))
    assert scorer.fixed_batch_size == 4
    pixel_values = torch.randn(6, 3, 64, 64)
    fixed, dynamic = scorer(pixel_values), OnnxScorer(onnx_path(exported_dir))(pixel_values)
    assert fixed.probabilities.shape == (6, 10)
    np.testing.assert_allclose(fixed.probabilities, dynamic.probabilities, atol=1e-5)


def test_missing_graph_is_a_clear_error(tiny_scorer_dir, photos, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("CSKD_ONNX_CACHE", str(tmp_path / "empty-cache"))  # nor in the cache other tests filled
    assert main(["score", str(photos), "--model", str(tiny_scorer_dir), "--backend", "onnxruntime"]) == 2
    error = capsys.readouterr().err
    assert "no ONNX graph" in error and "cskd export" in error


def test_workers_and_batches_keep_input_order_and_results(tiny_scorer_dir, photos):
    model, processor = load_scorer(tiny_scorer_dir, device="cpu")
    paths = sorted(photos.rglob("*.*"))
    sequential = list(score_files(model, processor, paths, batch_size=1, num_workers=0, progress=False))
    parallel = list(score_files(model, processor, paths, batch_size=5, num_workers=2, progress=False))
    assert [r.path for r in parallel] == [str(p) for p in paths]
    for one, other in zip(sequential, parallel, strict=True):
        assert (one.error is None) == (other.error is None)
        if one.error is None:
            np.testing.assert_allclose(one.distribution, other.distribution, atol=1e-5)


def test_channels_last_scorer_equals_the_plain_model(tiny_scorer_dir, sample_dir):
    model, processor = load_scorer(tiny_scorer_dir, device="cpu")
    pixel_values = processor([open_image(path) for path in sorted(sample_dir.iterdir())[:4]])["pixel_values"]
    with torch.no_grad():
        plain = model(pixel_values=pixel_values).probabilities.numpy()
    np.testing.assert_allclose(TorchScorer(model, channels_last=True)(pixel_values).probabilities, plain, atol=1e-5)


def assert_same_scores(rows, reference_rows, atol):
    assert list(rows) == list(reference_rows)  # same files, same order
    for path, row in rows.items():
        assert row["error"] == reference_rows[path]["error"]
        for column in row:
            if not row["error"] and (column.startswith("p_") or column in ("score", "std")):
                assert float(row[column]) == pytest.approx(float(reference_rows[path][column]), abs=atol)


def test_default_scoring_exports_the_graph_once_into_the_cache_and_matches_torch(
    tiny_scorer_dir, photos, tmp_path, monkeypatch
):
    model_dir = tmp_path / "model"  # a folder without onnx/: the default path must not need `cskd export`
    shutil.copytree(tiny_scorer_dir, model_dir)
    cache = tmp_path / "graphs"
    monkeypatch.setenv("CSKD_ONNX_CACHE", str(cache))
    for name, backend in (("default", []), ("again", []), ("torch", ["--backend", "torch"])):
        command = ["score", str(photos), "--model", str(model_dir), "--output", str(tmp_path / f"{name}.csv")]
        assert main([*command, "--no-progress", *backend]) == 0
        if name == "default":
            (graph,) = cache.glob("*/model.onnx")
            exported_at = graph.stat().st_mtime_ns
    assert not (model_dir / "onnx").exists()
    assert graph.parent.name == graph_cache_key(source_hashes(model_dir))  # the files' hashes: no torch to look up
    assert ScoringSpec.load(graph.parent / "spec.json") == ScoringSpec.from_model_folder(model_dir).with_sources(
        source_hashes(model_dir)
    )
    assert graph.stat().st_mtime_ns == exported_at and len(list(cache.glob("files-*"))) == 1  # reused, not re-exported
    default, torch_rows = scores_csv(tmp_path / "default.csv"), scores_csv(tmp_path / "torch.csv")
    assert_same_scores(default, torch_rows, atol=5e-4)  # the spec's resampler: within one 8-bit level
    assert scores_csv(tmp_path / "again.csv") == default
    assert sum(bool(row["error"]) for row in default.values()) == 3  # the unreadable files still get their rows


def test_auto_backend_falls_back_to_pytorch_when_onnx_is_not_at_hand(tiny_scorer_dir, tmp_path, monkeypatch, caplog):
    model, _ = load_scorer(tiny_scorer_dir, device="cpu")
    assert isinstance(fast_scorer(model), OnnxScorer)
    assert isinstance(fast_scorer(model, "torch"), TorchScorer)

    monkeypatch.setattr(scoring, "onnx_runtime_installed", lambda: False)
    assert isinstance(fast_scorer(model), TorchScorer)
    monkeypatch.undo()

    def unexportable(model, path, *args, **kwargs):
        raise RuntimeError("no ONNX symbolic for an operator")

    monkeypatch.setenv("CSKD_ONNX_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(export, "export_scoring_graph", unexportable)
    with caplog.at_level(logging.WARNING, logger="cskd_hf.inference.scoring"):
        assert isinstance(fast_scorer(model), TorchScorer)
    assert "exporting the model to ONNX failed (RuntimeError: no ONNX symbolic for an operator)" in caplog.text
    with pytest.raises(RuntimeError, match="no ONNX symbolic"):
        fast_scorer(model, "onnxruntime")  # asked for explicitly: no silent fallback
    assert isinstance(fast_scorer(model.to(torch.float64)), TorchScorer)  # the graph is exported in float32 only
