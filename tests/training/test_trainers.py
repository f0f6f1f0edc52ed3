"""The trainers end to end: in process for the numbers, and through `accelerate launch` on 2 processes."""

import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file
from transformers import AutoModel, AutoModelForImageClassification

from cskd_hf import CSKDConfig, CSKDForAestheticScoring, CSKDForFeatureAlignment, CSKDModel, losses
from cskd_hf.models.fingerprint import weights_fingerprint
from cskd_hf.training import cfa, skd, supervised
from cskd_hf.training.common import NonFiniteLossError
from tests.helpers import same_tensors
from tests.training.helpers import QUICK, last_checkpoint, launch, rank_states


def cfa_args(toy_world, out, *extra):
    return [
        "--teacher",
        str(toy_world["clip"]),
        "--unlabeled",
        str(toy_world["unlabeled"]),
        "--output_dir",
        str(out),
        "--batch_size",
        "8",
        "--num_workers",
        "0",
        "--shuffle_buffer",
        "16",
        *QUICK,
        *extra,
    ]


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


@pytest.fixture(scope="module")
def classifier_teacher(tmp_path_factory):
    """A timm classifier saved as a local checkpoint: the `timm:ARCH@FILE` teacher of multi-teacher CFA."""
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("classifier") / "test_vit.safetensors"
    save_file(timm.create_model("test_vit", num_classes=10).state_dict(), str(path))
    return f"timm:test_vit@{path}"


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


def test_skd_loss_decreases_on_the_toy_problem(toy_world, toy_teacher, tmp_path):
    args = [
        "--dataset",
        str(toy_world["labeled"]),
        "--teacher",
        str(toy_teacher),
        "--unlabeled",
        str(toy_world["unlabeled"]),
        "--mu",
        "2",
        "--batch_size",
        "4",
        "--num_epochs",
        "4",
        "--num_workers",
        "0",
        "--head_dropout",
        "0.1",
        "--shuffle_buffer",
        "16",
        "--output_dir",
        str(tmp_path / "skd"),
        *QUICK,
    ]
    skd.train(skd.parse_arguments(skd.SKDArguments, args))
    state = rank_states_single(last_checkpoint(tmp_path / "skd"))
    losses = [entry["train/epoch_loss"] for entry in state["history"]]
    assert losses[-1] < 0.7 * losses[0], losses
    assert state["skipped_images"] >= 1  # the corrupt file in the unlabeled folder, skipped and counted
    assert state["history"][-1]["validation/srcc"] > 0.5

    # The card's model-index, read by huggingface_hub's own parser, holds exactly the validation metrics of an epoch.
    card = ModelCard.load(tmp_path / "skd" / "README.md")
    reported = {result.metric_type: result.metric_value for result in card.data.eval_results}
    assert reported.keys() == {"srcc", "plcc", "mse", "accuracy"}
    assert any(all(entry.get(f"validation/{k}") == v for k, v in reported.items()) for entry in state["history"])
    for published in ("README.md", "config.json"):  # nothing of this machine's folders goes to the Hub
        text = (tmp_path / "skd" / published).read_text()
        assert not any(str(path) in text for path in (tmp_path, toy_world["labeled"], toy_teacher))


def test_skd_resumes_from_a_checkpoint_taken_just_after_the_streams_short_last_chunk(toy_world, toy_teacher, tmp_path):
    # 33 unlabeled files in chunks of mu * batch_size = 8: the 5th step reads the short last chunk of 1, and the
    # checkpoint after it holds stream_read = 33, which once failed to resume ("must be a whole number of chunks").
    def skd_args(out, *extra):
        return [
            "--dataset", str(toy_world["labeled"]), "--teacher", str(toy_teacher), "--unlabeled",
            str(toy_world["unlabeled"]), "--mu", "2", "--batch_size", "4", "--num_epochs", "1", "--num_workers", "0",
            "--head_dropout", "0.1", "--shuffle_buffer", "16", "--checkpointing_steps", "5", "--output_dir", str(out),
            *QUICK, *extra,
        ]  # fmt: skip

    skd.train(skd.parse_arguments(skd.SKDArguments, skd_args(tmp_path / "uninterrupted")))
    after_short_chunk = tmp_path / "uninterrupted" / "checkpoints" / "checkpoint_0"
    assert rank_states_single(after_short_chunk)["stream_read"] == 33
    resumed = skd_args(tmp_path / "resumed", "--resume_from_checkpoint", str(after_short_chunk))
    skd.train(skd.parse_arguments(skd.SKDArguments, resumed))
    assert same_tensors(
        load_file(str(tmp_path / "uninterrupted" / "model.safetensors")),
        load_file(str(tmp_path / "resumed" / "model.safetensors")),
    )


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


def rank_states_single(checkpoint):
    import json

    return json.loads((checkpoint / "trainer_state_rank0.json").read_text())


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


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_checkpoint(toy_world, tmp_path, monkeypatch):
    emd = losses.earth_movers_distance
    calls = {"n": 0}

    def nan_on_fifth_call(*args, **kwargs):
        calls["n"] += 1
        value = emd(*args, **kwargs)
        return value * float("nan") if calls["n"] == 5 else value

    monkeypatch.setattr(losses, "earth_movers_distance", nan_on_fifth_call)
    out = tmp_path / "nan"
    args = [
        "--dataset",
        str(toy_world["labeled"]),
        "--output_dir",
        str(out),
        "--num_epochs",
        "2",
        "--batch_size",
        "8",
        "--num_workers",
        "0",
        "--checkpointing_steps",
        "2",
        *QUICK,
    ]
    with pytest.raises(NonFiniteLossError, match=r"step 5 .*checkpoint_1"):
        supervised.train(supervised.parse_arguments(supervised.FinetuneArguments, args))
    good = last_checkpoint(out)
    assert good.name == "checkpoint_1" and rank_states_single(good)["global_step"] == 4
    weights = load_file(str(good / "model.safetensors"))
    assert all(torch.isfinite(tensor).all() for tensor in weights.values())


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


@pytest.mark.distributed
def test_skd_kill_and_resume_equals_an_uninterrupted_run(toy_world, toy_teacher, two_process_config, tmp_path):
    """A checkpoint taken mid-epoch, with the unlabeled stream half read, is what a killed run leaves behind."""
    args = [
        "--dataset",
        str(toy_world["labeled"]),
        "--teacher",
        str(toy_teacher),
        "--unlabeled",
        str(toy_world["unlabeled"]),
        "--mu",
        "2",
        "--batch_size",
        "4",
        "--num_epochs",
        "2",
        "--num_workers",
        "1",
        "--head_dropout",
        "0.1",
        "--shuffle_buffer",
        "16",
        "--checkpointing_steps",
        "2",
        "--checkpoints_total_limit",
        "20",
        *QUICK,
    ]
    launch(two_process_config, "skd.py", *args, "--output_dir", str(tmp_path / "uninterrupted"))
    mid_epoch = tmp_path / "uninterrupted" / "checkpoints" / "checkpoint_1"
    assert rank_states(mid_epoch)[0]["batches_in_epoch"] == 4 and rank_states(mid_epoch)[0]["stream_read"] > 0
    launch(
        two_process_config,
        "skd.py",
        *args,
        "--output_dir",
        str(tmp_path / "resumed"),
        "--resume_from_checkpoint",
        str(mid_epoch),
    )

    uninterrupted = load_file(str(tmp_path / "uninterrupted" / "model.safetensors"))
    resumed = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    assert same_tensors(uninterrupted, resumed)
    for states in (rank_states(last_checkpoint(tmp_path / "resumed")),):
        assert states[0]["weights_fingerprint"] == states[1]["weights_fingerprint"]
