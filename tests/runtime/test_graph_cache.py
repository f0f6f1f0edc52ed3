"""`cskd_hf.runtime.graph_cache`: a model folder's graph found by its files (in the folder or the cache), never a
stale one, and the files' hashes cached by path, size, inode and times."""

import json
import logging
import os
import shutil

import pytest

from cskd_hf.cli import main
from cskd_hf.runtime import PortableScorer, ScoringSpec, find_graph
from cskd_hf.runtime.graph_cache import graph_cache_key, source_hashes
from cskd_hf.runtime.scoring import GraphNotFoundError


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
    weights = model_dir / "model.safetensors"
    an_hour_ago = weights.stat().st_mtime_ns - 3600 * 10**9
    os.utime(weights, ns=(an_hour_ago, an_hour_ago))  # saved long before it is hashed: the record can be trusted
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
    os.utime(weights, ns=(an_hour_ago, an_hour_ago + 1_000_000))
    assert source_hashes(model_dir, cache)["model.safetensors"] == hashes["model.safetensors"]
    # A record made within two seconds of the file's last change is not trusted (a same-size rewrite in the same
    # mtime tick would go unseen): hashed again.
    source_hashes(model_dir, cache)
    record.write_text(json.dumps({**json.loads(record.read_text()), "sha256": "recorded"}))
    assert source_hashes(model_dir, cache)["model.safetensors"] == "recorded"
    os.utime(weights)  # now
    source_hashes(model_dir, cache)
    record.write_text(json.dumps({**json.loads(record.read_text()), "sha256": "recorded"}))
    assert source_hashes(model_dir, cache)["model.safetensors"] == hashes["model.safetensors"]
    record.write_text("{damaged")
    assert source_hashes(model_dir, cache)["model.safetensors"] == hashes["model.safetensors"]


def test_the_exported_spec_holds_the_processors_fields_and_the_files_hashes(exported_model):
    import hashlib

    spec = json.loads((exported_model / "onnx" / "spec.json").read_text())
    processor = json.loads((exported_model / "preprocessor_config.json").read_text())
    assert (spec["format"], spec["version"]) == ("cskd-scoring-spec", 1)
    for field in ("image_size", "resize_size", "resize_mode", "interpolation", "resize_input", "draft_decoding"):
        assert spec[field] == processor[field], field
    assert spec["image_mean"] == processor["image_mean"] and spec["bin_scores"] == [float(i) for i in range(1, 11)]
    weights = (exported_model / "model.safetensors").read_bytes()
    assert spec["source_files"]["model.safetensors"] == hashlib.sha256(weights).hexdigest()
    assert set(spec["source_files"]) == {"config.json", "preprocessor_config.json", "model.safetensors"}


def test_a_graph_without_a_spec_is_used_only_when_asked_for(exported_model, sample_dir, tmp_path, caplog):
    old = tmp_path / "old-export"  # as an older cskd-hf exported it: no spec.json
    shutil.copytree(exported_model, old)
    (old / "onnx" / "spec.json").unlink()
    with caplog.at_level(logging.WARNING, logger="cskd_hf.runtime.graph_cache"):
        assert find_graph(old, cache_dir=tmp_path / "cache") is None
    assert "has no spec.json" in caplog.text
    trusted = find_graph(old, cache_dir=tmp_path / "cache", trust_unverified=True)
    assert trusted.path == old / "onnx" / "model.onnx" and trusted.spec == ScoringSpec.from_model_folder(old)
    assert main(["score", str(sample_dir), "--model", str(old), "--backend", "onnxruntime", "--no-progress"]) == 0


def test_a_folder_of_a_graph_and_its_spec_alone_scores(exported_model, sample_dir, tmp_path):
    deployed = tmp_path / "deployed"
    shutil.copytree(exported_model / "onnx", deployed)  # model.onnx and spec.json, no weights
    scorer = PortableScorer.from_pretrained(deployed)
    reference = PortableScorer.from_pretrained(exported_model)
    assert [r.score for r in scorer.score_files([sample_dir])] == [
        r.score for r in reference.score_files([sample_dir])
    ]


def test_an_export_without_quantize_removes_an_earlier_int8_graph(tiny_scorer_dir, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_scorer_dir, model_dir)
    assert main(["export", "--model", str(model_dir), "--quantize"]) == 0
    assert find_graph(model_dir, quantized=True) is not None
    assert main(["export", "--model", str(model_dir)]) == 0
    assert not (model_dir / "onnx" / "model_quantized.onnx").exists()
    assert find_graph(model_dir, quantized=True) is None
