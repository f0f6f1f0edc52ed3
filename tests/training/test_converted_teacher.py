"""SKD with a converted scalar predictor (the LAION predictor's shape) as its teacher."""

import json

import numpy as np
import torch

from cskd_hf.models.cskd import CSKDImageProcessor
from cskd_hf.teachers.scorer import ScorerTeacher
from cskd_hf.training import skd
from tests.helpers import write_tiny_laion
from tests.training.helpers import QUICK, last_checkpoint


def test_skd_distils_a_converted_scalar_teacher(toy_world, tmp_path):
    laion = write_tiny_laion(tmp_path / "laion")
    student_processor = CSKDImageProcessor(image_size=32)
    teacher = ScorerTeacher(laion["converted"], student_processor)
    # The teacher's pseudo-labels: a Gaussian over AVA's bins around its scalar score, which stays the MLP's output.
    pixel_values = torch.randn(3, 3, 32, 32)
    distributions = teacher(pixel_values).numpy()
    with torch.no_grad():
        scores = teacher.model(pixel_values=teacher.view(pixel_values)).mean_score.numpy()
    bins = np.arange(1, 11)
    expected = np.exp(-((bins[None] - scores[:, None]) ** 2) / (2 * 1.4**2))
    np.testing.assert_allclose(distributions, expected / expected.sum(1, keepdims=True), atol=1e-6)

    args = [
        "--dataset", str(toy_world["labeled"]), "--teacher", str(laion["converted"]), "--unlabeled",
        str(toy_world["unlabeled"]), "--mu", "2", "--batch_size", "4", "--num_epochs", "3", "--num_workers", "0",
        "--head_dropout", "0.1", "--shuffle_buffer", "16", "--output_dir", str(tmp_path / "student"), *QUICK,
    ]  # fmt: skip
    metrics = skd.train(skd.parse_arguments(skd.SKDArguments, args))
    state = json.loads((last_checkpoint(tmp_path / "student") / "trainer_state_rank0.json").read_text())
    losses = [entry["train/epoch_loss"] for entry in state["history"]]
    assert losses[-1] < 0.8 * losses[0], losses  # the student learns the labels and the scalar teacher's Gaussians
    assert np.isfinite(metrics["srcc"]) and (tmp_path / "student" / "model.safetensors").exists()


def test_skd_without_labels_distils_a_converted_teacher_and_validates(toy_world, tmp_path):
    """No labeled dataset: the distillation term alone on the unlabeled stream, validated on a labeled split."""
    from scipy.stats import spearmanr
    from transformers import AutoModelForImageClassification, pipeline

    from cskd_hf.data.prepare import load_labeled

    laion = write_tiny_laion(tmp_path / "laion")
    out = tmp_path / "student"
    args = [
        "--teacher", str(laion["converted"]), "--unlabeled", str(toy_world["unlabeled"]), "--batch_size", "8",
        "--num_epochs", "12", "--num_workers", "0", "--head_dropout", "0.0", "--shuffle_buffer", "16",
        "--validation_dataset", str(toy_world["labeled"]), "--lr_decay_epochs", "8", "--output_dir", str(out),
        *QUICK,
    ]  # fmt: skip
    metrics = skd.train(skd.parse_arguments(skd.SKDArguments, args))
    losses = [entry["train/epoch_loss"] for entry in metrics["history"]]
    assert losses[-1] < 0.5 * losses[0], losses
    assert all("validation/srcc" in entry for entry in metrics["history"])  # validated every epoch
    assert (out / "best" / "model.safetensors").exists() and "without labels" in (out / "README.md").read_text()
    assert AutoModelForImageClassification.from_pretrained(out).config.num_bins == 10

    # The student ranks the validation photos as its teacher does (it never saw a label).
    photos = [row["image"] for row in load_labeled(str(toy_world["labeled"]))["validation"]]
    student = [result["score"] for result in pipeline("image-aesthetics", model=str(out))(photos)]
    teacher = [result["score"] for result in pipeline("image-aesthetics", model=str(laion["converted"]))(photos)]
    agreement = spearmanr(student, teacher).statistic
    print(f"student vs teacher SRCC on the validation images: {agreement:.3f}")
    assert agreement > 0.5
