"""`cskd_hf.inference.export`: `cskd export`'s ONNX graphs (dynamic batch, int8) equal the PyTorch model on
real photos and for other backbone families; the graph cache's fingerprint follows the weights."""

import logging
import shutil

import numpy as np
import pytest
import torch

from cskd_hf import CSKDForAestheticScoring, CSKDImageProcessor
from cskd_hf.cli import main
from cskd_hf.data.images import open_image
from cskd_hf.inference.export import model_fingerprint, onnx_path
from cskd_hf.inference.scoring import OnnxScorer, TorchScorer, load_scorer
from tests.helpers import tiny_config

pytest.importorskip("onnxruntime")


def test_onnx_probabilities_equal_pytorch_on_real_photos(exported_dir, photos):
    model, processor = load_scorer(exported_dir, device="cpu")
    images = [open_image(path) for path in sorted(photos.glob("*.*"))]
    pixel_values = processor(images)["pixel_values"]
    expected = TorchScorer(model, channels_last=False)(pixel_values)
    onnx = OnnxScorer(onnx_path(exported_dir))(pixel_values)
    assert onnx.probabilities.shape == (len(images), 10)
    np.testing.assert_allclose(onnx.probabilities, expected.probabilities, atol=1e-4, rtol=0)
    np.testing.assert_allclose(onnx.mean_score, expected.mean_score, atol=1e-4, rtol=0)
    np.testing.assert_allclose(onnx.std_score, expected.std_score, atol=1e-4, rtol=0)
    assert np.ptp(expected.mean_score) > 1e-3  # different photos, different scores: the comparison means something


def test_int8_graph_quantises_the_matrix_products_and_stays_close(exported_dir, photos):
    import onnx

    graph = onnx.load(str(onnx_path(exported_dir, quantized=True))).graph
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= {node.op_type for node in graph.node}
    _, processor = load_scorer(exported_dir, device="cpu")
    pixel_values = processor([open_image(path) for path in sorted(photos.glob("*.*"))])["pixel_values"]
    quantized = OnnxScorer(onnx_path(exported_dir, quantized=True))(pixel_values)
    full = OnnxScorer(onnx_path(exported_dir))(pixel_values)
    np.testing.assert_allclose(quantized.probabilities.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(quantized.mean_score, full.mean_score, atol=0.05)


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
@pytest.mark.parametrize("architecture", ["test_vit", "test_efficientnet"])
def test_export_parity_for_other_backbone_families(architecture, exporter, tmp_path, sample_dir):
    torch.manual_seed(0)
    config = tiny_config(architecture, initializer_range=0.5)
    model = CSKDForAestheticScoring(config).eval()
    model.save_pretrained(tmp_path)
    processor = CSKDImageProcessor.from_model_config(config)
    processor.save_pretrained(tmp_path)
    assert main(["export", "--model", str(tmp_path), "--exporter", exporter]) == 0
    pixel_values = processor([open_image(path) for path in sorted(sample_dir.iterdir())[:4]])["pixel_values"]
    expected = TorchScorer(model, channels_last=False)(pixel_values)
    np.testing.assert_allclose(
        OnnxScorer(onnx_path(tmp_path))(pixel_values).probabilities, expected.probabilities, atol=1e-4, rtol=0
    )


def test_auto_falls_back_to_torch_exports_exporter(tiny_scorer_dir, sample_dir, tmp_path, monkeypatch, caplog):
    from cskd_hf.inference import export

    def removed(*args, **kwargs):
        raise AttributeError("module 'torch.onnx' has no TorchScript exporter")

    monkeypatch.setattr(export, "export_with_torchscript", removed)
    model, processor = load_scorer(tiny_scorer_dir, device="cpu")
    with caplog.at_level(logging.INFO, logger="cskd_hf.inference.export"):
        export.export_scoring_graph(model, tmp_path / "model.onnx")
    assert "TorchScript exporter failed (AttributeError" in caplog.text and "(torch.export exporter)" in caplog.text
    pixel_values = processor([open_image(path) for path in sorted(sample_dir.iterdir())[:3]])["pixel_values"]
    np.testing.assert_allclose(
        OnnxScorer(tmp_path / "model.onnx")(pixel_values).probabilities,
        TorchScorer(model, channels_last=False)(pixel_values).probabilities,
        atol=1e-4,
    )
    with pytest.raises(AttributeError, match="no TorchScript exporter"):
        export.export_scoring_graph(model, tmp_path / "again.onnx", exporter="torchscript")
    # A graph that does not compute what the model computes (tracing baked something in) is not kept.
    monkeypatch.undo()

    def wrong_graph(*args, **kwargs):
        raise ValueError("the exported graph's probabilities differ from the model's by 0.3")

    monkeypatch.setattr(export, "check_graph", wrong_graph)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="cskd_hf.inference.export"):
        export.export_scoring_graph(model, tmp_path / "checked.onnx")
    assert "TorchScript exporter failed (ValueError: the exported graph's probabilities differ" in caplog.text
    with pytest.raises(ValueError, match="exporter must be one of"):
        export.export_scoring_graph(model, tmp_path / "again.onnx", exporter="jit")


def test_fingerprint_follows_the_weights_not_the_folder(tiny_scorer_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_scorer_dir, copy)
    model, _ = load_scorer(tiny_scorer_dir, device="cpu")
    assert model_fingerprint(model) == model_fingerprint(load_scorer(copy, device="cpu")[0])
    with torch.no_grad():
        next(model.parameters())[0] += 1e-3
    assert model_fingerprint(model) != model_fingerprint(load_scorer(copy, device="cpu")[0])
