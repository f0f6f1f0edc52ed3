"""`cskd_hf.training.skd` end to end: the loss decreases on the toy problem and the card holds the validation
metrics; a converted scalar predictor as the teacher, with and without labels; the teacher cache
(`--teacher_cache`): its targets, its reuse (resumed runs, runs without labels, 2 processes) and its refusal of
another teacher or view."""

import json

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file

from cskd_hf import CSKDConfig, CSKDForAestheticScoring, CSKDImageProcessor
from cskd_hf.data.batching import decode_or_skip, image_key
from cskd_hf.data.unlabeled import load_unlabeled
from cskd_hf.teachers.scorer import ScorerTeacher
from cskd_hf.training import skd
from cskd_hf.training.cache import TeacherCache
from tests.helpers import same_tensors, write_tiny_laion
from tests.training.helpers import QUICK, last_checkpoint, launch, rank_states_single


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


def skd_args(toy_world, teacher, out, *extra):
    return [
        "--dataset", str(toy_world["labeled"]), "--teacher", str(teacher), "--unlabeled", str(toy_world["unlabeled"]),
        "--mu", "2", "--batch_size", "4", "--num_epochs", "1", "--num_workers", "0", "--head_dropout", "0.1",
        "--shuffle_buffer", "16", "--output_dir", str(out), *QUICK, *map(str, extra),
    ]  # fmt: skip


def run_skd(*args) -> dict:
    return skd.train(skd.parse_arguments(skd.SKDArguments, list(args)))


def history(out) -> list[dict]:
    return json.loads((last_checkpoint(out) / "trainer_state_rank0.json").read_text())["history"]


def files_of(folder) -> dict:
    return {path.name: path.stat().st_mtime_ns for path in folder.iterdir()}


@pytest.fixture(scope="module")
def cached_run(toy_world, toy_teacher, tmp_path_factory):
    """SKD for 2 epochs with `--teacher_cache`: the student sees augmented views, the unlabeled targets come from the
    cache it builds first; a checkpoint every 5 steps (12 an epoch)."""
    root = tmp_path_factory.mktemp("skd-cached")
    out, cache = root / "run", root / "cache"
    every_5 = ("--checkpointing_steps", "5", "--checkpoints_total_limit", "20")
    metrics = run_skd(*skd_args(toy_world, toy_teacher, out, "--num_epochs", "2", *every_5, "--teacher_cache", cache))
    return {"out": out, "cache": cache, "metrics": metrics, "options": every_5}


@pytest.fixture
def no_rebuild(monkeypatch):
    """Building a teacher cache fails the test: the complete one in place must be reused."""

    def build(*args, **kwargs):
        raise AssertionError("the teacher cache was built again")

    monkeypatch.setattr(skd, "build_teacher_cache", build)


def test_the_cached_targets_are_the_teachers_predictions_on_the_centre_view(toy_world, toy_teacher, cached_run):
    processor = CSKDImageProcessor.from_pretrained(cached_run["out"])  # the student's, which makes the views
    teacher = ScorerTeacher(toy_teacher, processor)
    keys, centre, augmented = [], [], []
    for row in load_unlabeled([str(toy_world["unlabeled"])]):
        image = decode_or_skip(row["image"])
        if image is not None:
            keys.append(image_key(row["image"]))
            centre.append(processor(image, train=False)["pixel_values"][0])
            augmented.append(processor(image, train=True)["pixel_values"][0])
    cache = TeacherCache(cached_run["cache"])
    assert len(keys) == len(cache) == 32  # every readable image once; the corrupt file is not in it
    expected = teacher(torch.stack(centre))
    torch.testing.assert_close(cache.lookup(keys), expected, rtol=0, atol=1e-6)
    assert (expected.std(0) > 1e-3).any()  # the teacher tells the images apart
    # The trade-off the option makes: the teacher's output on an augmented view is another target.
    assert (teacher(torch.stack(augmented)) - expected).abs().max() > 1e-4

    description = json.loads((cached_run["cache"] / "complete.json").read_text())
    processor_options = {k: v for k, v in processor.to_dict().items() if k != "auto_map"}  # auto_map: added on saving
    assert description["teacher"] == str(toy_teacher) and description["image_processor"] == processor_options
    state = history(cached_run["out"])
    assert state[-1]["train/epoch_loss"] < state[0]["train/epoch_loss"]  # it trains
    card = (cached_run["out"] / "README.md").read_text()
    assert "cached" in card and str(cached_run["cache"]) not in card  # said, without this machine's folder


def test_without_augmentation_the_cached_teacher_trains_as_the_live_one(
    toy_world, toy_teacher, cached_run, no_rebuild, tmp_path
):
    """The student on the centre view, as the cache: the cached run takes the live run's steps. The cache is reused
    whatever the student's augmentation (it always holds the centre view)."""
    fixed = "--no_train_augmentation"
    live = run_skd(*skd_args(toy_world, toy_teacher, tmp_path / "live", fixed))
    cached = run_skd(
        *skd_args(toy_world, toy_teacher, tmp_path / "cached", fixed, "--teacher_cache", cached_run["cache"])
    )
    assert history(tmp_path / "cached")[0]["train/epoch_loss"] == pytest.approx(
        history(tmp_path / "live")[0]["train/epoch_loss"], abs=1e-6
    )
    assert cached["srcc"] == pytest.approx(live["srcc"], abs=1e-4)


def test_a_resumed_run_reuses_the_cache_and_ends_as_the_uninterrupted_one(
    toy_world, toy_teacher, cached_run, no_rebuild, tmp_path
):
    cache, built = cached_run["cache"], files_of(cached_run["cache"])
    assert json.loads((cache / "complete.json").read_text())["num_shards"] == 1
    mid_epoch = cached_run["out"] / "checkpoints" / "checkpoint_1"  # step 10 of 12 in the first epoch
    options = [*cached_run["options"], "--num_epochs", "2", "--teacher_cache", cache]
    resumed = run_skd(
        *skd_args(toy_world, toy_teacher, tmp_path / "resumed", *options, "--resume_from_checkpoint", mid_epoch)
    )
    assert same_tensors(
        load_file(str(cached_run["out"] / "model.safetensors")),
        load_file(str(tmp_path / "resumed" / "model.safetensors")),
    )
    assert resumed["srcc"] == cached_run["metrics"]["srcc"]
    assert files_of(cache) == built  # not a file rewritten


def test_a_cache_built_for_another_teacher_or_view_is_refused(toy_world, toy_teacher, cached_run, tmp_path):
    other = tmp_path / "other-teacher"
    torch.manual_seed(1)
    CSKDForAestheticScoring(CSKDConfig(architecture="test_resnet", image_size=32)).save_pretrained(other)
    cache = cached_run["cache"]
    with pytest.raises(ValueError, match="built for another teacher") as refused:
        run_skd(*skd_args(toy_world, other, tmp_path / "other", "--teacher_cache", cache))
    message = str(refused.value)
    assert f"teacher '{toy_teacher}' in the cache, '{other}' here" in message and "teacher_weights" in message
    # The same teacher for a student of another input size: another view of the images.
    with pytest.raises(ValueError, match=r"image_processor\.image_size 32 in the cache, 48 here"):
        run_skd(*skd_args(toy_world, toy_teacher, tmp_path / "larger", "--image_size", "48", "--teacher_cache", cache))
    assert TeacherCache(cache).description["teacher"] == str(toy_teacher)  # left as it was


def test_skd_without_labels_from_the_cache_trains_as_from_the_live_teacher(
    toy_world, toy_teacher, cached_run, no_rebuild, tmp_path
):
    """The cache of the labeled run serves the run without labels (same teacher, same view)."""

    def without_labels(out, *extra):
        return [
            "--teacher", str(toy_teacher), "--unlabeled", str(toy_world["unlabeled"]), "--batch_size", "8",
            "--num_epochs", "2", "--num_workers", "0", "--shuffle_buffer", "16", "--no_train_augmentation",
            "--validation_dataset", str(toy_world["labeled"]), "--output_dir", str(out), *QUICK, *map(str, extra),
        ]  # fmt: skip

    live = run_skd(*without_labels(tmp_path / "live"))
    cached = run_skd(*without_labels(tmp_path / "cached", "--teacher_cache", cached_run["cache"]))
    for cached_epoch, live_epoch in zip(cached["history"], live["history"], strict=True):
        assert cached_epoch["train/epoch_loss"] == pytest.approx(live_epoch["train/epoch_loss"], abs=1e-6)
    assert cached["srcc"] == pytest.approx(live["srcc"], abs=1e-4)
    assert "cached" in (tmp_path / "cached" / "README.md").read_text()


def test_teacher_cache_needs_unlabeled_images(toy_world, toy_teacher, tmp_path):
    supervised_kd = [
        "--dataset", str(toy_world["labeled"]), "--teacher", str(toy_teacher), "--output_dir", str(tmp_path),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="--teacher_cache .* give --unlabeled"):
        skd.parse_arguments(skd.SKDArguments, [*supervised_kd, "--teacher_cache", str(tmp_path / "cache")])


@pytest.mark.slow
@pytest.mark.distributed
def test_two_processes_build_a_shard_each_and_a_resumed_run_reuses_them(
    toy_world, toy_teacher, two_process_config, tmp_path
):
    cache = tmp_path / "cache"
    options = ["--num_epochs", "2", "--num_workers", "1", "--checkpointing_steps", "2", "--checkpoints_total_limit"]
    options += ["20", "--teacher_cache", str(cache)]
    launch(two_process_config, "skd.py", *skd_args(toy_world, toy_teacher, tmp_path / "uninterrupted", *options))
    assert json.loads((cache / "complete.json").read_text())["num_shards"] == 2
    assert len(load_file(str(cache / "rank0.safetensors"))["targets"]) > 0
    assert len(load_file(str(cache / "rank1.safetensors"))["targets"]) > 0
    assert len(TeacherCache(cache)) == 32  # the two parts of the stream, together

    built = files_of(cache)
    mid_epoch = tmp_path / "uninterrupted" / "checkpoints" / "checkpoint_1"
    launch(
        two_process_config,
        "skd.py",
        *skd_args(toy_world, toy_teacher, tmp_path / "resumed", *options, "--resume_from_checkpoint", str(mid_epoch)),
    )
    assert files_of(cache) == built  # reused: not a file rewritten
    assert same_tensors(
        load_file(str(tmp_path / "uninterrupted" / "model.safetensors")),
        load_file(str(tmp_path / "resumed" / "model.safetensors")),
    )
