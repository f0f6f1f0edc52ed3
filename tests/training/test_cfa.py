"""`cskd_hf.training.cfa` end to end: the alignment loss decreases and the backbone feeds phase II, the teacher
cache gives the live teacher's loss, several teachers (CLIP and a classifier), 2 processes, and an unlabeled
Parquet without images refused before training."""

import re

import pytest
import torch
from transformers import AutoModel

from cskd_hf import CSKDConfig, CSKDForAestheticScoring, CSKDForFeatureAlignment, CSKDModel
from cskd_hf.models.fingerprint import weights_fingerprint
from cskd_hf.training import cfa
from tests.helpers import same_tensors, write_tiny_clip, write_unlabeled_parquet
from tests.training.helpers import QUICK, cfa_args, last_checkpoint, launch, rank_states


def test_cfa_loss_decreases_and_its_backbone_feeds_phase_two(toy_world, tmp_path):
    result = cfa.train(
        cfa.parse_arguments(cfa.CFAArguments, cfa_args(toy_world, tmp_path / "cfa", "--num_epochs", "4"))
    )
    losses = [entry["train/epoch_loss"] for entry in result["history"]]
    assert losses[-1] < 0.5 * losses[0], losses  # the student learns to reproduce CLIP's embedding

    aligned = CSKDForFeatureAlignment.from_pretrained(tmp_path / "cfa")
    assert aligned.config.projection_dim == 32  # the tiny CLIP's hidden size: the CLS target
    scorer = CSKDForAestheticScoring.from_pretrained(tmp_path / "cfa")
    assert same_tensors(aligned.backbone.state_dict(), scorer.backbone.state_dict())
    assert (tmp_path / "cfa" / "README.md").exists() and (tmp_path / "cfa" / "preprocessor_config.json").exists()


def test_teacher_cache_gives_the_live_teachers_first_epoch_loss(toy_world, tmp_path):
    fixed_view = ("--num_epochs", "1", "--no_train_augmentation")
    live = cfa.train(cfa.parse_arguments(cfa.CFAArguments, cfa_args(toy_world, tmp_path / "live", *fixed_view)))
    cache_dir = tmp_path / "cache"
    cached = cfa.train(
        cfa.parse_arguments(
            cfa.CFAArguments, cfa_args(toy_world, tmp_path / "cached", *fixed_view, "--teacher_cache", str(cache_dir))
        )
    )
    assert (cache_dir / "complete.json").exists() and (cache_dir / "rank0.safetensors").exists()
    assert cached["history"][0]["train/epoch_loss"] == pytest.approx(live["history"][0]["train/epoch_loss"], abs=1e-6)
    # Reusing the cache (no rebuild) gives the same run again.
    again = cfa.train(
        cfa.parse_arguments(
            cfa.CFAArguments, cfa_args(toy_world, tmp_path / "again", *fixed_view, "--teacher_cache", str(cache_dir))
        )
    )
    assert again["history"][0]["train/epoch_loss"] == pytest.approx(cached["history"][0]["train/epoch_loss"], abs=1e-6)


def test_several_teachers_parse_and_a_single_one_keeps_the_cfa_layout(toy_world, classifier_teacher, tmp_path):
    args = cfa.parse_arguments(
        cfa.CFAArguments, cfa_args(toy_world, tmp_path, "--teacher", classifier_teacher, "--teacher_weight", "1", "2")
    )
    assert args.teacher == [str(toy_world["clip"]), classifier_teacher] and args.teacher_weight == [1.0, 2.0]
    assert args.cache_dir(1) is None
    with pytest.raises(ValueError, match="2 weights for 1 teachers"):
        cfa.parse_arguments(cfa.CFAArguments, cfa_args(toy_world, tmp_path, "--teacher_weight", "1", "2"))
    single = CSKDForFeatureAlignment(CSKDConfig(architecture="test_resnet", image_size=32, projection_dim=[32]))
    assert single.config.projection_dim == 32 and any(key.startswith("projector.") for key in single.state_dict())


def test_each_teacher_can_name_its_own_cache_folder(toy_world, classifier_teacher, tmp_path):
    """`--teacher_caches`: one folder per teacher, e.g. a one-teacher run's cache reused as is, without links."""
    caches = ("--teacher_caches", str(tmp_path / "clip-cache"), str(tmp_path / "classifier-cache"))
    args = cfa.parse_arguments(
        cfa.CFAArguments, cfa_args(toy_world, tmp_path, "--teacher", classifier_teacher, *caches)
    )
    assert [args.cache_dir(0), args.cache_dir(1)] == [str(tmp_path / "clip-cache"), str(tmp_path / "classifier-cache")]
    with pytest.raises(ValueError, match="1 folders for 2 teachers"):
        cfa.parse_arguments(
            cfa.CFAArguments, cfa_args(toy_world, tmp_path, "--teacher", classifier_teacher, *caches[:2])
        )
    with pytest.raises(ValueError, match="not both"):
        both = (*caches, "--teacher_cache", str(tmp_path / "cache"))
        cfa.parse_arguments(cfa.CFAArguments, cfa_args(toy_world, tmp_path, "--teacher", classifier_teacher, *both))


def test_multi_teacher_alignment_with_a_clip_and_a_classifier_of_other_widths(toy_world, classifier_teacher, tmp_path):
    """Hou et al.'s multi-teacher feature distillation: one projector per teacher, the losses summed."""
    two = ("--teacher", classifier_teacher, "--teacher_weight", "1", "0.5")
    fixed_view = ("--num_epochs", "1", "--no_train_augmentation")
    result = cfa.train(
        cfa.parse_arguments(cfa.CFAArguments, cfa_args(toy_world, tmp_path / "multi", *two, "--num_epochs", "4"))
    )
    losses = [entry["train/epoch_loss"] for entry in result["history"]]
    assert losses[-1] < 0.6 * losses[0], losses

    aligned = CSKDForFeatureAlignment.from_pretrained(tmp_path / "multi")
    widths = [32, timm_num_features("test_vit")]
    assert widths[0] != widths[1] and aligned.config.projection_dim == widths
    assert aligned.config.alignment_weights == [1.0, 0.5]
    pixel_values = torch.randn(2, 3, 32, 32)
    embeddings = aligned(pixel_values=pixel_values).embeddings
    assert [e.shape[-1] for e in embeddings] == widths
    scorer = CSKDForAestheticScoring.from_pretrained(tmp_path / "multi")
    assert same_tensors(aligned.backbone.state_dict(), scorer.backbone.state_dict())

    # The caches of both teachers (one subfolder each) give the live teachers' loss.
    live = cfa.train(cfa.parse_arguments(cfa.CFAArguments, cfa_args(toy_world, tmp_path / "live", *two, *fixed_view)))
    cache = tmp_path / "cache"
    cached = cfa.train(
        cfa.parse_arguments(
            cfa.CFAArguments,
            cfa_args(toy_world, tmp_path / "cached", *two, *fixed_view, "--teacher_cache", str(cache)),
        )
    )
    assert (cache / "teacher0" / "complete.json").exists() and (cache / "teacher1" / "complete.json").exists()
    assert cached["history"][0]["train/epoch_loss"] == pytest.approx(live["history"][0]["train/epoch_loss"], abs=1e-5)


def timm_num_features(architecture: str) -> int:
    import timm

    return timm.create_model(architecture, num_classes=0).num_features


@pytest.mark.distributed
def test_cfa_on_two_processes(toy_world, two_process_config, tmp_path):
    out = tmp_path / "cfa"
    launch(two_process_config, "cfa.py", *cfa_args(toy_world, out, "--num_epochs", "2", "--num_workers", "1"))
    states = rank_states(last_checkpoint(out))
    assert states[0]["weights_fingerprint"] == states[1]["weights_fingerprint"]
    assert 1 <= sum(state["skipped_images"] for state in states) <= 2  # the corrupt file, once per epoch it is read
    model = AutoModel.from_pretrained(out)
    assert isinstance(model, CSKDModel)
    assert states[0]["weights_fingerprint"] != "" and weights_fingerprint(CSKDForFeatureAlignment.from_pretrained(out))


def test_cfa_refuses_an_unlabeled_parquet_without_images_before_training(tmp_path, caplog):
    bad = write_unlabeled_parquet(tmp_path / "corpus" / "part-0.parquet", {"url": ["https://example.com/a.jpg"]})
    args = ["--teacher", str(write_tiny_clip(tmp_path / "clip")), "--unlabeled", str(bad)]
    args += ["--output_dir", str(tmp_path / "out"), "--num_workers", "0", *QUICK]
    with pytest.raises(ValueError, match=rf"{re.escape(str(bad))}: no image column among \['url'\]"):
        cfa.train(cfa.parse_arguments(cfa.CFAArguments, args))
    assert not (tmp_path / "out" / "checkpoints").exists()
