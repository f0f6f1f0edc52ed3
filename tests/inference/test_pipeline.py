"""`cskd_hf.inference.pipeline`: the `image-aesthetics` pipeline scores paths, PIL images and batches as the model
does, runs the cached ONNX graph by default, and refuses a model that does not score."""

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import (
    AutoImageProcessor,
    AutoModelForImageClassification,
    ViTConfig,
    ViTForImageClassification,
    pipeline,
)

from cskd_hf.data.images import open_image
from cskd_hf.inference.scoring import OnnxScorer, TorchScorer


def test_pipeline_scores_paths_pil_images_and_batches(tiny_scorer_dir, sample_dir):
    paths = sorted(sample_dir.glob("*"))[:5]
    scorer = pipeline("image-aesthetics", model=str(tiny_scorer_dir))

    model = AutoModelForImageClassification.from_pretrained(tiny_scorer_dir).eval()
    processor = AutoImageProcessor.from_pretrained(tiny_scorer_dir)
    with torch.no_grad():
        # Large JPEGs decode at a reduced size that still covers the resize (draft mode), as `cskd score` does.
        expected = model(**processor([open_image(p, draft_size=processor.resize_size) for p in paths]))
        exact = model(**processor([open_image(p) for p in paths]))

    single = scorer(str(paths[0]))
    assert set(single) == {"score", "std", "distribution"}
    assert len(single["distribution"]) == 10 and abs(sum(single["distribution"]) - 1) < 1e-5

    batched = scorer([str(p) for p in paths], batch_size=4)
    from_pil = scorer([Image.open(p) for p in paths])
    # Paths decode in draft mode; PIL images come already decoded, at full size.
    for results, reference in ((batched, expected), (from_pil, exact)):
        assert len(results) == len(paths)
        torch.testing.assert_close(torch.tensor([r["score"] for r in results]), reference.mean_score)
        torch.testing.assert_close(torch.tensor([r["std"] for r in results]), reference.std_score)
        torch.testing.assert_close(torch.tensor([r["distribution"] for r in results]), reference.probabilities)
    full_decode = scorer([str(p) for p in paths], draft=False, batch_size=2, num_workers=2)
    torch.testing.assert_close(torch.tensor([r["distribution"] for r in full_decode]), exact.probabilities)
    assert abs(single["score"] - batched[0]["score"]) < 1e-5  # batching changes only float rounding
    assert len({round(r["score"], 6) for r in batched}) > 1  # different photos, different scores


def test_pipeline_refuses_a_model_that_does_not_score(tiny_scorer_dir):
    """Another kind of model fails when the pipeline is built, by name, not at its first call."""
    config = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2)
    processor = AutoImageProcessor.from_pretrained(tiny_scorer_dir)
    with pytest.raises(ValueError, match="is a ViTForImageClassification, not a CSKD aesthetic scoring model"):
        pipeline("image-aesthetics", model=ViTForImageClassification(config), image_processor=processor)


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
