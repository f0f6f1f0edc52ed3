"""`cskd_hf.runtime`: the torch-free scorer against the PyTorch model, and finding a folder's graph by its files."""

import json
import logging
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from cskd_hf.cli import main
from cskd_hf.data.images import open_image
from cskd_hf.inference.scoring import load_scorer, score_files
from cskd_hf.runtime import PortableScorer, ScoringSpec, find_graph
from cskd_hf.runtime.graph_cache import graph_cache_key, source_hashes
from cskd_hf.runtime.scoring import GraphNotFoundError
from tests.helpers import AWKWARD_FILES, UNREADABLE


def test_the_runtime_scores_files_folders_and_images_as_the_torch_model_does(exported_model, photos):
    scorer = PortableScorer.from_pretrained(exported_model)
    assert scorer.graph_path == exported_model / "onnx" / "model.onnx"
    paths = sorted(p for p in photos.rglob("*") if p.is_file())
    portable = list(scorer.score_files([photos], batch_size=5, num_threads=2))
    model, processor = load_scorer(exported_model, device="cpu")
    reference = list(score_files(model, processor, paths, batch_size=4, num_workers=0, progress=False))
    assert [result.path for result in portable] == [result.path for result in reference] == list(map(str, paths))
    unreadable = {AWKWARD_FILES[kind] for kind in UNREADABLE}
    for result, expected in zip(portable, reference, strict=True):
        assert (result.error is None) == (expected.error is None) == (os.path.basename(result.path) not in unreadable)
        if result.error is None:
            # within one 8-bit level of preprocessing (tests/runtime/test_spec.py)
            assert result.score == pytest.approx(expected.score, abs=5e-4)
            assert result.std == pytest.approx(expected.std, abs=5e-4)
            np.testing.assert_allclose(result.distribution, expected.distribution, atol=5e-4)
        else:
            assert result.error == expected.error
    # A PIL image of any mode scores as its file does (no draft decoding for a PNG); keys are the pipeline's.
    png = photos / "awkward" / "alpha.png"
    (from_image,) = scorer.score_images([Image.open(png)])
    (from_file,) = [result for result in portable if result.path == str(png)]
    assert set(from_image) == {"score", "std", "distribution"}
    assert from_image["score"] == pytest.approx(from_file.score, abs=1e-6)
    assert scorer.score(open_image(png))["score"] == pytest.approx(from_file.score, abs=1e-6)


def test_a_fixed_batch_graph_and_batch_sizes_give_the_same_scores(exported_model, sample_dir, tmp_path):
    fixed = tmp_path / "fixed"
    shutil.copytree(exported_model, fixed)
    assert main(["export", "--model", str(fixed), "--batch-size", "3"]) == 0
    one = [r.score for r in PortableScorer.from_pretrained(exported_model).score_files([sample_dir], batch_size=1)]
    padded = [r.score for r in PortableScorer.from_pretrained(fixed).score_files([sample_dir], batch_size=4)]
    np.testing.assert_allclose(padded, one, atol=1e-5)


def test_the_graph_is_found_by_the_folders_files_and_never_stale(tiny_scorer_dir, tmp_path, monkeypatch, caplog):
    cache = tmp_path / "cache"
    monkeypatch.setenv("CSKD_ONNX_CACHE", str(cache))
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_scorer_dir, model_dir)
    with pytest.raises(GraphNotFoundError, match="no ONNX graph"):
        PortableScorer.from_pretrained(model_dir)

    assert main(["score", str(tmp_path / "model"), "--model", str(model_dir)]) == 1  # no images: exports, scores 0
    graph = find_graph(model_dir)
    assert graph.path.parent == cache / graph_cache_key(source_hashes(model_dir))
    assert graph.spec.source_files == source_hashes(model_dir)

    # Another bin layout (config.json) is another model: the cached graph is not used for it.
    config = json.loads((model_dir / "config.json").read_text())
    config["bin_scores"] = [score / 2 for score in config["bin_scores"]]
    (model_dir / "config.json").write_text(json.dumps(config))
    assert find_graph(model_dir) is None

    # A folder's own graph exported before its files changed is stale: skipped, with a warning.
    assert main(["export", "--model", str(model_dir)]) == 0
    assert find_graph(model_dir).path == model_dir / "onnx" / "model.onnx"
    assert find_graph(model_dir).spec.bin_scores == tuple(config["bin_scores"])
    processor = json.loads((model_dir / "preprocessor_config.json").read_text())
    (model_dir / "preprocessor_config.json").write_text(json.dumps({**processor, "interpolation": "bicubic"}))
    with caplog.at_level(logging.WARNING, logger="cskd_hf.runtime.graph_cache"):
        assert find_graph(model_dir) is None
    assert "exported from other weights or settings" in caplog.text


def test_a_files_hash_is_cached_by_path_size_and_mtime(tiny_scorer_dir, tmp_path):
    cache = tmp_path / "cache"
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_scorer_dir, model_dir)
    hashes = source_hashes(model_dir, cache)
    assert set(hashes) == {"config.json", "preprocessor_config.json", "model.safetensors"}
    (record,) = [
        path
        for path in (cache / "file-hashes").iterdir()
        if "model.safetensors" in json.loads(path.read_text())["path"]
    ]
    # The record is what is read while the file is unchanged (no re-hashing) ...
    record.write_text(json.dumps({**json.loads(record.read_text()), "sha256": "recorded"}))
    assert source_hashes(model_dir, cache)["model.safetensors"] == "recorded"
    # ... and a file written again (another mtime) is hashed again.
    weights = model_dir / "model.safetensors"
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert source_hashes(model_dir, cache)["model.safetensors"] == hashes["model.safetensors"]
    record.write_text("{damaged")
    assert source_hashes(model_dir, cache)["model.safetensors"] == hashes["model.safetensors"]


def test_the_exported_spec_is_the_folders(exported_model):
    spec = ScoringSpec.load(exported_model / "onnx" / "spec.json")
    assert spec == ScoringSpec.from_model_folder(exported_model).with_sources(source_hashes(exported_model))
