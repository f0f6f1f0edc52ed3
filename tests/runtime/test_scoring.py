"""`cskd_hf.runtime`: the torch-free scorer against the PyTorch model, and finding a folder's graph by its files."""

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from cskd_hf.cli import main
from cskd_hf.data.images import open_image
from cskd_hf.inference.scoring import load_scorer, score_files
from cskd_hf.runtime import PortableScorer
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


def test_the_command_line_decodes_in_its_own_thread_and_refuses_empty_batches(exported_model, sample_dir, tmp_path):
    output = tmp_path / "scores.csv"
    command = ["score", str(sample_dir), "--model", str(exported_model), "--no-progress", "-o", str(output)]
    assert main([*command, "--num-workers", "0", "--batch-size", "3"]) == 0
    expected = [r.score for r in PortableScorer.from_pretrained(exported_model).score_files([sample_dir])]
    rows = output.read_text().splitlines()[1:]
    np.testing.assert_allclose([float(row.split(",")[1]) for row in rows], expected, atol=1e-5)
    assert main([*command, "--batch-size", "0"]) == 2


def test_a_gpu_asked_for_by_name_runs_the_pytorch_model():
    from argparse import Namespace

    from cskd_hf.cli.score import uses_torch

    assert uses_torch(Namespace(backend="auto", device="cuda:1"))
    assert uses_torch(Namespace(backend="torch", device="cpu"))
    assert not uses_torch(Namespace(backend="auto", device="cpu"))
    assert not uses_torch(Namespace(backend="auto", device="auto"))
    assert not uses_torch(Namespace(backend="onnxruntime", device="cuda"))  # the graph, as asked


def test_an_image_that_fails_after_decoding_costs_only_its_own_row(exported_model, sample_dir, monkeypatch):
    from cskd_hf.runtime.spec import ScoringSpec

    preprocess = ScoringSpec.pixel_values

    def refuse_wide_images(spec, image):
        if image.width > 1.4 * image.height:  # the landscape photos among the samples (coffee, chelsea, ...)
            raise ValueError("a resampler failure")
        return preprocess(spec, image)

    monkeypatch.setattr(ScoringSpec, "pixel_values", refuse_wide_images)
    results = list(PortableScorer.from_pretrained(exported_model).score_files([sample_dir], batch_size=4))
    failed = [result for result in results if result.error]
    assert failed and all("cannot preprocess the image (ValueError: a resampler failure)" in r.error for r in failed)
    assert all(result.path in result.error for result in failed)
    assert len(results) - len(failed) >= 5 and all(r.score is not None for r in results if not r.error)
