"""`cskd_hf.training.supervised` end to end: Hou et al.'s joint alignment mode, a validation split carved from
train, direct CLIP fine-tuning, 2 processes, and lossless `cskd data shard` output training exactly the model
its source trains."""

import json

import pytest
import torch
from huggingface_hub import ModelCard
from transformers import AutoModelForImageClassification

from cskd_hf import CSKDConfig, CSKDForAestheticScoring, CSKDImageProcessor
from cskd_hf.data.shard import shard
from cskd_hf.models.fingerprint import weights_fingerprint
from cskd_hf.training import supervised
from cskd_hf.training.arguments import parse_arguments
from tests.training.helpers import QUICK, last_checkpoint, launch, rank_states, rank_states_single


def test_hou_joint_mode_aligns_to_a_classifier_beside_the_labels_in_one_stage(toy_world, classifier_teacher, tmp_path):
    """Hou et al. (2022): on the labeled images, the EMD to the labels plus lambda times the alignment of the
    student's features to an object classifier's, in one stage; the projector trains alongside and is dropped."""
    out = tmp_path / "hou"
    args = [
        "--dataset", str(toy_world["labeled"]), "--alignment_teacher", classifier_teacher, "--alignment_weight", "2",
        "--output_dir", str(out), "--num_epochs", "4", "--batch_size", "8", "--num_workers", "0",
        "--head_dropout", "0.1", *QUICK,
    ]  # fmt: skip
    result = supervised.train(supervised.parse_arguments(supervised.FinetuneArguments, args))
    history = result["history"]
    alignment = [entry["train/epoch_loss_alignment"] for entry in history]
    assert alignment[-1] < 0.7 * alignment[0], alignment  # the features move towards the classifier's
    for entry in history:  # the loss is the labels' EMD plus lambda * the alignment, nothing else
        expected = entry["train/epoch_loss_supervised"] + 2 * entry["train/epoch_loss_alignment"]
        assert entry["train/epoch_loss"] == pytest.approx(expected, rel=1e-5)
    assert all("validation/srcc" in entry for entry in history)
    model = CSKDForAestheticScoring.from_pretrained(out)
    assert not any("projector" in key for key in model.state_dict())  # a plain scorer: the projector was for training
    assert "Hou et al." in (out / "README.md").read_text()


def test_without_a_validation_split_a_seeded_part_of_train_validates_never_test(tmp_path):
    from cskd_hf.data.prepare import load_labeled
    from tests.training.toy import write_toy_labeled

    data = write_toy_labeled(tmp_path / "toy", sizes={"train": 40, "test": 16}, image_size=16)
    out = tmp_path / "finetuned"
    options = ["--dataset", str(data), "--output_dir", str(out), "--validation_size", "8", "--num_epochs", "1"]
    args = supervised.parse_arguments(supervised.FinetuneArguments, [*options, "--batch_size", "8", *QUICK])
    train, validation, note = supervised.labeled_splits(args, seed=3)
    assert (len(train), len(validation)) == (36, 4)  # at most a tenth of train
    original = load_labeled(str(data))
    assert set(validation["image_id"]) <= set(original["train"]["image_id"])
    assert not set(validation["image_id"]) & set(original["test"]["image_id"])
    assert supervised.labeled_splits(args, seed=3)[1]["image_id"] == validation["image_id"]  # seeded
    assert "4 images carved from `train` (seed 3)" in note

    supervised.train(args)
    card = (out / "README.md").read_text()
    assert "carved from `train` (seed 0)" in card and "the test split never chooses the model" in card
    assert "IER: |predicted - true| > 0.5 per interval of 1" in card


def test_direct_clip_fine_tuning_trains_the_clip_tower(toy_world, tmp_path):
    """The baseline CSKD argues against: CLIP's own image tower fine-tuned with the EMD loss (Hentschel et al.)."""
    from transformers import CLIPVisionModelWithProjection

    args = [
        "--dataset",
        str(toy_world["labeled"]),
        "--clip_backbone",
        str(toy_world["clip"]),
        "--output_dir",
        str(tmp_path / "clip-ft"),
        "--num_epochs",
        "4",
        "--batch_size",
        "8",
        "--num_workers",
        "0",
        "--head_dropout",
        "0.1",
        "--report_to",
        "none",
        "--learning_rate",
        "1e-3",
    ]
    supervised.train(supervised.parse_arguments(supervised.FinetuneArguments, args))
    losses = [
        entry["train/epoch_loss"] for entry in rank_states_single(last_checkpoint(tmp_path / "clip-ft"))["history"]
    ]
    assert losses[-1] < 0.8 * losses[0], losses
    tuned = AutoModelForImageClassification.from_pretrained(tmp_path / "clip-ft")
    assert tuned.config.backbone_type == "clip" and tuned.config.image_size == 32  # CLIP's own input size
    original = CLIPVisionModelWithProjection.from_pretrained(toy_world["clip"]).state_dict()
    tuned_tower = tuned.backbone.state_dict()
    assert original.keys() == tuned_tower.keys()
    assert not torch.equal(original["visual_projection.weight"], tuned_tower["visual_projection.weight"])
    card = ModelCard.load(tmp_path / "clip-ft" / "README.md")
    assert "clip" in card.data.tags and str(toy_world["clip"]) not in card.content
    assert f"the image tower of CLIP `{toy_world['clip'].name}`" in card.text


@pytest.mark.distributed
def test_finetune_on_two_processes(toy_world, two_process_config, tmp_path):
    out = tmp_path / "finetune"
    launch(
        two_process_config,
        "finetune.py",
        "--dataset",
        str(toy_world["labeled"]),
        "--output_dir",
        str(out),
        "--num_epochs",
        "2",
        "--batch_size",
        "4",
        "--num_workers",
        "1",
        "--head_dropout",
        "0.1",
        *QUICK,
    )
    states = rank_states(last_checkpoint(out))
    assert states[0]["weights_fingerprint"] == states[1]["weights_fingerprint"]
    assert states[0]["global_step"] == 2 * (48 // (4 * 2))  # each process takes half of every epoch's batches
    model = AutoModelForImageClassification.from_pretrained(out)
    assert weights_fingerprint(model) == states[0]["weights_fingerprint"]
    assert (out / "best" / "model.safetensors").exists()
    assert "validation/srcc" in states[0]["history"][-1]
    assert "srcc" in (out / "README.md").read_text()


def finetune(dataset, out) -> dict:
    args = ["--dataset", str(dataset), "--output_dir", str(out), "--num_epochs", "1", "--batch_size", "8",
            "--num_workers", "0", "--head_dropout", "0.1", "--seed", "3", *QUICK]  # fmt: skip
    supervised.train(parse_arguments(supervised.FinetuneArguments, args))
    return json.loads((last_checkpoint(out) / "trainer_state_rank0.json").read_text())


def test_fine_tuning_on_lossless_shards_gives_the_sources_weights(toy_world, tmp_path):
    # The resize of the model the trainer builds from QUICK's architecture and image size.
    processor = CSKDImageProcessor.from_model_config(CSKDConfig(architecture="test_resnet", image_size=32))
    shards = tmp_path / "shards"
    plan = shard(str(toy_world["labeled"]), shards, processor, image_format="png", num_workers=1, progress=False)
    assert plan.labeled and sum(info["skipped"] for info in plan.splits.values()) == 0

    from_source, from_shards = finetune(toy_world["labeled"], tmp_path / "a"), finetune(shards, tmp_path / "b")
    assert from_shards["weights_fingerprint"] == from_source["weights_fingerprint"]
    assert from_shards["history"] == from_source["history"]
