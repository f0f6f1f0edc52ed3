"""The teacher cache: its file format and description check, and SKD's targets for the unlabeled stream from it."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from cskd_hf import CSKDConfig, CSKDForAestheticScoring, CSKDImageProcessor
from cskd_hf.data.batching import decode_or_skip, image_key
from cskd_hf.data.unlabeled import load_unlabeled
from cskd_hf.teachers.scorer import ScorerTeacher
from cskd_hf.training import skd
from cskd_hf.training.cache import TeacherCache
from tests.helpers import same_tensors
from tests.training.helpers import QUICK, last_checkpoint, launch


def test_a_cfa_cache_written_before_skd_had_one_still_loads(tmp_path):
    """Caches written before the SKD cache existed store their tensor as "embeddings"; a description that differs
    from the recorded one is refused, naming the value."""
    embeddings = torch.randn(3, 8)
    save_file({"embeddings": embeddings}, str(tmp_path / "rank0.safetensors"))
    (tmp_path / "rank0.keys.json").write_text(json.dumps(["a", "b", "c"]))
    description = {"teacher": "openai/clip-vit-large-patch14", "target": "cls", "image_size": 224}
    (tmp_path / "complete.json").write_text(json.dumps({**description, "num_shards": 1}))

    cache = TeacherCache(tmp_path, description)
    assert len(cache) == 3 and torch.equal(cache.lookup(["c", "a"]), embeddings[[2, 0]])
    with pytest.raises(ValueError, match="teacher 'openai/clip-vit-large-patch14' in the cache, 'other/clip' here"):
        TeacherCache(tmp_path, {**description, "teacher": "other/clip"})


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
