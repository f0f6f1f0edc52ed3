"""`cskd export`, `cskd score`'s backends (the default cached ONNX graph, `--backend onnxruntime`) and its fast
input pipeline."""

import csv
import logging
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from cskd_hf import CSKDForAestheticScoring, CSKDImageProcessor
from cskd_hf.cli import main
from cskd_hf.data.images import open_image
from cskd_hf.data.samples import sample_photo
from cskd_hf.inference import export, scoring
from cskd_hf.inference.export import model_fingerprint, onnx_path
from cskd_hf.inference.scoring import OnnxScorer, TorchScorer, fast_scorer, load_scorer, score_files
from tests.helpers import tiny_config, write_awkward_images

pytest.importorskip("onnxruntime")


def scores_csv(path) -> dict[str, dict]:
    return {row["path"]: row for row in csv.DictReader(open(path))}


@pytest.fixture(scope="module")
def exported_dir(tiny_scorer_dir, tmp_path_factory):
    """A copy of the tiny scorer with its dynamic-batch ONNX graph and the int8 copy, written by the CLI."""
    model_dir = tmp_path_factory.mktemp("exported") / "model"
    shutil.copytree(tiny_scorer_dir, model_dir)
    assert main(["export", "--model", str(model_dir), "--quantize"]) == 0
    return model_dir


@pytest.fixture(scope="module")
def photos(tmp_path_factory, sample_dir):
    """The sample photos, one of them as a large camera-sized JPEG, plus the unreadable kinds of file."""
    folder = tmp_path_factory.mktemp("photos")
    for path in sorted(sample_dir.iterdir()):
        shutil.copy(path, folder / path.name)
    Image.fromarray(sample_photo("astronaut")).resize((3000, 2000)).save(folder / "large.jpg", quality=90)
    write_awkward_images(folder / "awkward", sample_photo("coffee"))
    return folder


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


def test_missing_graph_is_a_clear_error(tiny_scorer_dir, photos, capsys):
    assert main(["score", str(photos), "--model", str(tiny_scorer_dir), "--backend", "onnxruntime"]) == 2
    error = capsys.readouterr().err
    assert "no ONNX graph" in error and "cskd export" in error


@pytest.mark.parametrize("architecture", ["test_vit", "test_efficientnet"])
def test_export_parity_for_other_backbone_families(architecture, tmp_path, sample_dir):
    torch.manual_seed(0)
    config = tiny_config(architecture, initializer_range=0.5)
    model = CSKDForAestheticScoring(config).eval()
    model.save_pretrained(tmp_path)
    processor = CSKDImageProcessor.from_model_config(config)
    processor.save_pretrained(tmp_path)
    assert main(["export", "--model", str(tmp_path)]) == 0
    pixel_values = processor([open_image(path) for path in sorted(sample_dir.iterdir())[:4]])["pixel_values"]
    expected = TorchScorer(model, channels_last=False)(pixel_values)
    np.testing.assert_allclose(
        OnnxScorer(onnx_path(tmp_path))(pixel_values).probabilities, expected.probabilities, atol=1e-4, rtol=0
    )


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


def test_draft_decoding_of_a_large_jpeg_is_smaller_and_nearly_identical_after_resizing(photos):
    processor = CSKDImageProcessor(image_size=224)
    path = photos / "large.jpg"
    drafted, full = open_image(path, draft_size=processor.resize_size), open_image(path)
    assert full.size == (3000, 2000)
    assert min(drafted.size) >= processor.resize_size and drafted.size[0] <= 3000 // 4  # decoded at 1/4 or 1/8
    crop = processor.resize_and_crop()
    difference = (crop(drafted).float() - crop(full).float()).abs().mean().item()
    assert difference < 2.0  # mean absolute difference in 8-bit levels, after the resize to 256 px
    # PNGs and small JPEGs decode fully whatever the draft size.
    assert open_image(photos / "camera.png", draft_size=8).size == open_image(photos / "camera.png").size


def test_uint8_crop_then_batch_normalisation_equals_the_processors_transform(sample_dir):
    processor = CSKDImageProcessor(image_size=64)
    image = open_image(sorted(sample_dir.iterdir())[0])
    assert processor.resize_and_crop()(image).dtype == torch.uint8
    batch = torch.stack([processor.resize_and_crop()(image)] * 2)
    assert torch.equal(processor.to_pixel_values(batch)[0], processor(image)["pixel_values"][0])


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
    assert graph.parent.name == model_fingerprint(load_scorer(model_dir, device="cpu")[0])
    assert graph.stat().st_mtime_ns == exported_at and len(list(cache.iterdir())) == 1  # reused, not re-exported
    default, torch_rows = scores_csv(tmp_path / "default.csv"), scores_csv(tmp_path / "torch.csv")
    assert_same_scores(default, torch_rows, atol=1e-4)
    assert scores_csv(tmp_path / "again.csv") == default
    assert sum(bool(row["error"]) for row in default.values()) == 3  # the unreadable files still get their rows


def test_fingerprint_follows_the_weights_not_the_folder(tiny_scorer_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_scorer_dir, copy)
    model, _ = load_scorer(tiny_scorer_dir, device="cpu")
    assert model_fingerprint(model) == model_fingerprint(load_scorer(copy, device="cpu")[0])
    with torch.no_grad():
        next(model.parameters())[0] += 1e-3
    assert model_fingerprint(model) != model_fingerprint(load_scorer(copy, device="cpu")[0])


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


def test_pipeline_runs_the_cached_graph_by_default(tiny_scorer_dir, sample_dir):
    from transformers import pipeline

    paths = [str(path) for path in sorted(sample_dir.iterdir())[:4]]
    default = pipeline("image-aesthetics", model=str(tiny_scorer_dir))
    plain = pipeline("image-aesthetics", model=str(tiny_scorer_dir), backend="torch")
    assert isinstance(default.scorer, OnnxScorer) and isinstance(plain.scorer, TorchScorer)
    fast, reference = default(paths, batch_size=2), plain(paths, batch_size=2)
    np.testing.assert_allclose(
        [r["distribution"] for r in fast], [r["distribution"] for r in reference], atol=1e-4, rtol=0
    )
    assert len({round(r["score"], 5) for r in fast}) > 1
