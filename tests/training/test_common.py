"""`cskd_hf.training.common`: checkpoints and resuming, under kills.

A kill while a checkpoint is being written never leaves a checkpoint that `latest` picks and then cannot load;
resuming runs no pickle; an unwritable or full output folder fails before training; a non-finite loss stops
naming the step. A resumed run ends as the uninterrupted one (also from a checkpoint taken just after the
stream's short last chunk, and on 2 processes). One process of a 2-process run dies: the whole run ends
promptly, says so, and resumes from its last checkpoint.

Real kills (slow): SIGKILL a training run at random moments, resume with `latest` each time, and end where an
uninterrupted run with the same seed ends, bit for bit. A single process is killed alone (what the OOM killer
does: its DataLoader workers and fork server must follow it); a 2-process `accelerate launch` loses every
process at once (a preempted or lost node). The first kill of each run lands inside its first checkpoint save,
after Accelerate wrote the weights and before the checkpoint is marked complete (the run is held there until
killed, so this does not depend on timing); the others land where the seeded draw puts them, mid-save or not,
before the first checkpoint or after the last. The assertions hold wherever a kill lands: that is the promise
under test.

    pytest -m slow tests/training/test_common.py -k random_sigkills -s   # -s prints what each kill hit
"""

import contextlib
import json
import logging
import os
import pickle
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import accelerate.checkpointing
import pytest
import torch
from accelerate import Accelerator
from safetensors.torch import load_file
from transformers import AutoModelForImageClassification

from cskd_hf import losses
from cskd_hf.models.fingerprint import weights_fingerprint
from cskd_hf.training import common, skd, supervised
from cskd_hf.training.common import COMPLETE_FILE, NonFiniteLossError, is_complete
from tests.helpers import same_tensors, write_hostile_pickle
from tests.training.helpers import (
    LAUNCH_ENV,
    QUICK,
    REPO,
    RUN_MARKER,
    cfa_args,
    last_checkpoint,
    launch,
    launch_command,
    launch_script,
    rank_states,
    rank_states_single,
    survivors,
)

# Fine-tuning whose process kills itself (SIGKILL, as the OOM killer or a preemption would) inside the N-th save:
# after Accelerate has written the model, optimizer and RNG states, before the trainer state and the mark.
KILLED_WHILE_SAVING = """
import os, signal
from cskd_hf.training import common, supervised

saves, original = 0, common.TrainerState.save


def save_then_die(self, folder, rank):
    global saves
    saves += 1
    if saves == int(os.environ["KILL_AT_SAVE"]):
        os.kill(os.getpid(), signal.SIGKILL)
    original(self, folder, rank)


common.TrainerState.save = save_then_die
supervised.main()
"""


def finetune_args(toy_world, out, *extra):
    return [
        "--dataset", str(toy_world["labeled"]), "--output_dir", str(out), "--num_epochs", "2", "--batch_size", "8",
        "--num_workers", "0", "--head_dropout", "0.1", "--checkpointing_steps", "2", "--checkpoints_total_limit", "1",
        *QUICK, *extra,
    ]  # fmt: skip


def test_kill_while_saving_resumes_from_the_last_complete_checkpoint(toy_world, tmp_path, caplog):
    uninterrupted = tmp_path / "uninterrupted"
    supervised.train(supervised.parse_arguments(supervised.FinetuneArguments, finetune_args(toy_world, uninterrupted)))
    expected = weights_fingerprint(AutoModelForImageClassification.from_pretrained(uninterrupted))

    out = tmp_path / "killed"
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_WHILE_SAVING, *finetune_args(toy_world, out)],
        env={**os.environ, "KILL_AT_SAVE": "3"}, capture_output=True, text=True,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    checkpoints = out / "checkpoints"
    # With a limit of one checkpoint, Accelerate would have deleted checkpoint_1 before writing checkpoint_2.
    assert (checkpoints / "checkpoint_1" / COMPLETE_FILE).exists()
    assert json.loads((checkpoints / "checkpoint_1" / COMPLETE_FILE).read_text())["global_step"] == 4
    assert (checkpoints / "checkpoint_2" / "model.safetensors").exists()  # written before the kill...
    assert not (checkpoints / "checkpoint_2" / COMPLETE_FILE).exists()  # ...but never marked complete

    with caplog.at_level(logging.WARNING, logger="cskd_hf"):
        supervised.train(
            supervised.parse_arguments(
                supervised.FinetuneArguments, finetune_args(toy_world, out, "--resume_from_checkpoint", "latest")
            )
        )
    assert "skipping checkpoint_2" in caplog.text
    assert (checkpoints / "incomplete_checkpoint_2").is_dir()  # kept for inspection, out of `latest`'s way
    assert weights_fingerprint(AutoModelForImageClassification.from_pretrained(out)) == expected
    complete = [folder.name for folder in checkpoints.glob("checkpoint_*") if (folder / COMPLETE_FILE).exists()]
    assert len(complete) == 1  # --checkpoints_total_limit, counted in complete checkpoints


def corrupt(path: Path, how: str) -> None:
    """Damage a checkpoint file as a full disk, bit rot or a half-synced bucket would: cut it short, or flip a byte."""
    data = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))


def numbered(folder: Path) -> list[Path]:
    return sorted(folder.glob("checkpoint_*"), key=lambda path: int(path.name.rsplit("_", 1)[1]))


@pytest.mark.parametrize(("damaged", "how"), [("model.safetensors", "truncate"), ("optimizer.bin", "flip"),
                                              ("random_states_0.pkl", "flip")])  # fmt: skip
def test_a_corrupt_newest_checkpoint_falls_back_to_the_previous_one(toy_world, tmp_path, caplog, damaged, how):
    """Every checkpoint carries a manifest of its files' sizes and SHA-256; `latest` passes over one that no longer
    matches (moved aside, named in the log) and the run ends bit-identical to an uninterrupted one."""
    options = ["--checkpointing_steps", "5", "--checkpoints_total_limit", "2"]
    uninterrupted = tmp_path / "uninterrupted"
    supervised.train(supervised.parse_arguments(supervised.FinetuneArguments, finetune_args(toy_world, uninterrupted)))
    expected = weights_fingerprint(AutoModelForImageClassification.from_pretrained(uninterrupted))

    out = tmp_path / "run"
    supervised.train(supervised.parse_arguments(supervised.FinetuneArguments, finetune_args(toy_world, out, *options)))
    previous, newest = numbered(out / "checkpoints")[-2:]
    manifest = json.loads((newest / common.MANIFEST_FILE).read_text())["files"]
    assert {damaged, "model.safetensors", "optimizer.bin", "trainer_state_rank0.json"} <= manifest.keys()
    corrupt(newest / damaged, how)

    with caplog.at_level(logging.INFO, logger="cskd_hf"):
        resumed = finetune_args(toy_world, out, *options, "--resume_from_checkpoint", "latest")
        supervised.train(supervised.parse_arguments(supervised.FinetuneArguments, resumed))
    assert f"skipping {newest.name}: {newest / damaged}" in caplog.text
    assert (newest.parent / f"corrupt_{newest.name}").is_dir() and f"resumed from {previous}" in caplog.text
    assert weights_fingerprint(AutoModelForImageClassification.from_pretrained(out)) == expected


def test_a_named_corrupt_checkpoint_is_refused_naming_the_file(toy_world, tmp_path):
    out = tmp_path / "run"
    supervised.train(supervised.parse_arguments(supervised.FinetuneArguments, finetune_args(toy_world, out)))
    checkpoint = numbered(out / "checkpoints")[-1]
    corrupt(checkpoint / "random_states_0.pkl", "flip")
    resumed = finetune_args(toy_world, tmp_path / "resumed", "--resume_from_checkpoint", str(checkpoint))
    with pytest.raises(OSError, match="random_states_0.pkl differs from the manifest"):
        supervised.train(supervised.parse_arguments(supervised.FinetuneArguments, resumed))


def test_resuming_runs_no_pickle_from_a_checkpoint(toy_world, tmp_path):
    out = tmp_path / "run"
    supervised.train(supervised.parse_arguments(supervised.FinetuneArguments, finetune_args(toy_world, out)))
    checkpoint = max((out / "checkpoints").glob("checkpoint_*"))
    marker = tmp_path / "code-ran"
    resumed = finetune_args(toy_world, tmp_path / "resumed", "--resume_from_checkpoint", str(checkpoint))
    write_hostile_pickle(checkpoint / "optimizer.bin", marker)  # Accelerate's pickled part of a checkpoint
    common.write_manifest(checkpoint)  # as whoever controls the folder could: the manifest guards integrity, not trust
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        supervised.train(supervised.parse_arguments(supervised.FinetuneArguments, resumed))
    assert not marker.exists()


def test_an_unwritable_or_full_output_dir_fails_before_training(toy_world, tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    with (
        caplog.at_level(logging.INFO, logger="cskd_hf"),
        pytest.raises(OSError, match="--output_dir .* cannot be written"),
    ):
        supervised.train(
            supervised.parse_arguments(supervised.FinetuneArguments, finetune_args(toy_world, blocker / "out"))
        )
    monkeypatch.setattr(common.shutil, "disk_usage", lambda path: SimpleNamespace(free=2**20))
    with (
        caplog.at_level(logging.INFO, logger="cskd_hf"),
        pytest.raises(OSError, match="1 MiB free; a checkpoint and"),
    ):
        supervised.train(
            supervised.parse_arguments(supervised.FinetuneArguments, finetune_args(toy_world, tmp_path / "full"))
        )
    assert "epoch 0" not in caplog.text  # nothing was trained


def test_a_full_disk_at_a_save_keeps_the_last_complete_checkpoint(toy_world, tmp_path, monkeypatch):
    save_state, write, saves = Accelerator.save_state, accelerate.checkpointing.save, []

    def counting_save_state(self, *args, **kwargs):
        saves.append(self)
        return save_state(self, *args, **kwargs)

    def write_unless_full(*args, **kwargs):  # torch.save's error when a write fails (ENOSPC) inside its archive
        if len(saves) == 2:
            raise RuntimeError("[enforce fail at inline_container.cc] PytorchStreamWriter failed writing file data/0")
        return write(*args, **kwargs)

    monkeypatch.setattr(Accelerator, "save_state", counting_save_state)
    monkeypatch.setattr(accelerate.checkpointing, "save", write_unless_full)
    out = tmp_path / "run"
    with pytest.raises(OSError, match="at step 4 .*PytorchStreamWriter failed.*last complete one is checkpoint_0"):
        supervised.train(supervised.parse_arguments(supervised.FinetuneArguments, finetune_args(toy_world, out)))
    monkeypatch.undo()
    supervised.train(
        supervised.parse_arguments(
            supervised.FinetuneArguments, finetune_args(toy_world, out, "--resume_from_checkpoint", "latest")
        )
    )
    assert (out / "checkpoints" / "incomplete_checkpoint_1").is_dir()
    assert AutoModelForImageClassification.from_pretrained(out).config.num_bins == 10


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


# CFA whose rank 1 is killed (SIGKILL, as the OOM killer would; SIGSTOP: it hangs) inside its N-th checkpoint save,
# while rank 0 goes on to the barrier that ends the save. It writes the moment first.
RANK_1_DIES = """
import os, signal, sys, time
from cskd_hf.training import cfa, common

saves, original = 0, common.TrainerState.save


def save_or_die(self, folder, rank):
    global saves
    saves += 1
    if rank == 1 and saves == int(os.environ["RANK_1_DIES_AT_SAVE"]):
        with open(os.environ["DEATH_TIME_FILE"], "w") as file:
            file.write(repr(time.time()))
        os.kill(os.getpid(), getattr(signal, os.environ.get("RANK_1_SIGNAL", "SIGKILL")))
    original(self, folder, rank)


if __name__ == "__main__":  # DataLoader workers import this script
    common.TrainerState.save = save_or_die
    cfa.main()
"""


@pytest.mark.distributed
def test_two_processes_agree_on_the_fallback_from_a_corrupt_checkpoint(toy_world, two_process_config, tmp_path):
    """Rank 1's RNG state flipped in the newest checkpoint: both ranks resume from the previous one (the main process
    verifies and tells the other), and the run ends as the uninterrupted one."""
    options = [
        "--num_epochs",
        "2",
        "--num_workers",
        "1",
        "--checkpointing_steps",
        "2",
        "--checkpoints_total_limit",
        "2",
    ]
    launch(two_process_config, "cfa.py", *cfa_args(toy_world, tmp_path / "uninterrupted", *options))
    out = tmp_path / "run"
    launch(two_process_config, "cfa.py", *cfa_args(toy_world, out, *options))
    previous, newest = numbered(out / "checkpoints")[-2:]
    corrupt(newest / "random_states_1.pkl", "flip")

    resumed = launch(
        two_process_config, "cfa.py", *cfa_args(toy_world, out, *options, "--resume_from_checkpoint", "latest")
    )
    assert f"skipping {newest.name}: {newest / 'random_states_1.pkl'}" in resumed.stderr
    assert resumed.stderr.count(f"resumed from {previous}") == 1  # logged by the main process, for both
    uninterrupted = load_file(str(tmp_path / "uninterrupted" / "model.safetensors"))
    assert same_tensors(uninterrupted, load_file(str(out / "model.safetensors")))
    assert (newest.parent / f"corrupt_{newest.name}").is_dir()


@pytest.mark.distributed
def test_a_killed_rank_ends_the_run_and_latest_resumes_it(toy_world, two_process_config, tmp_path):
    options = ["--num_epochs", "2", "--num_workers", "1", "--checkpointing_steps", "1"]
    launch(two_process_config, "cfa.py", *cfa_args(toy_world, tmp_path / "uninterrupted", *options))

    out = tmp_path / "killed"
    script = tmp_path / "cfa_rank_1_dies.py"
    script.write_text(RANK_1_DIES)
    death = tmp_path / "death_time"
    env = {"RANK_1_DIES_AT_SAVE": "2", "DEATH_TIME_FILE": str(death), "PYTHONPATH": str(REPO)}
    killed = launch_script(two_process_config, script, *cfa_args(toy_world, out, *options), env=env)
    ended = time.time()

    assert killed.returncode != 0
    assert "rank" in killed.stderr and "SIGKILL" in killed.stderr, killed.stderr[-3000:]  # torchrun names the rank
    died = float(death.read_text())
    print(f"the run ended {ended - died:.1f} s after rank 1 died")  # for the docs (pytest -s)
    assert ended - died < 60  # rank 0 is not left waiting in the barrier
    assert survivors(killed.run_marker) == []  # no rank, DataLoader worker or fork server
    checkpoints = out / "checkpoints"
    assert (checkpoints / "checkpoint_0" / COMPLETE_FILE).exists()
    assert not (checkpoints / "checkpoint_1" / COMPLETE_FILE).exists()

    launch(two_process_config, "cfa.py", *cfa_args(toy_world, out, *options, "--resume_from_checkpoint", "latest"))
    uninterrupted = load_file(str(tmp_path / "uninterrupted" / "model.safetensors"))
    assert same_tensors(uninterrupted, load_file(str(out / "model.safetensors")))
    assert (checkpoints / "incomplete_checkpoint_1").is_dir()


@pytest.mark.distributed
def test_a_hung_rank_fails_the_others_after_ddp_timeout(toy_world, two_process_config, tmp_path):
    """What a multi-node run sees of a lost node: the processes left wait in a collective, up to `--ddp_timeout`."""
    out = tmp_path / "hung"
    script = tmp_path / "cfa_rank_1_hangs.py"
    script.write_text(RANK_1_DIES)
    death = tmp_path / "hang_time"
    env = {
        "RANK_1_DIES_AT_SAVE": "2",
        "RANK_1_SIGNAL": "SIGSTOP",
        "DEATH_TIME_FILE": str(death),
        "PYTHONPATH": str(REPO),
    }
    options = ["--num_epochs", "2", "--num_workers", "1", "--checkpointing_steps", "1", "--ddp_timeout", "5"]
    hung = launch_script(two_process_config, script, *cfa_args(toy_world, out, *options), env=env)
    ended = time.time()

    assert hung.returncode != 0
    assert "Timed out waiting 5000ms" in hung.stderr, hung.stderr[-3000:]  # rank 0's barrier, after --ddp_timeout
    hung_at = float(death.read_text())
    print(f"the run ended {ended - hung_at:.1f} s after rank 1 hung")  # for the docs (pytest -s)
    assert ended - hung_at < 120
    assert survivors(hung.run_marker) == []
    assert (out / "checkpoints" / "checkpoint_0" / COMPLETE_FILE).exists()


# The kills of one run, in order: "save" (inside the first checkpoint save, where `STOPS_IN_ITS_FIRST_SAVE` holds the
# run), or "random" (a moment drawn from the uninterrupted run's working time, counted from its first progress bar,
# so that the draw lands in the work rather than in the imports; a resumed run may finish first). After them the run
# goes on to its end.
KILL_PLAN = ("save", "random", "random")
# Every run goes through this wrapper. With STOP_IN_SAVE set, the first save stops after Accelerate's part (weights,
# optimizer, RNG states) and before the trainer state and the mark, notes its folder, and waits for the SIGKILL.
STOPS_IN_ITS_FIRST_SAVE = """
import os, runpy, sys, time
from cskd_hf.training import common

original_save = common.TrainerState.save


def save_or_stop(self, folder, rank):
    if os.environ.get("STOP_IN_SAVE"):
        with open(os.environ["STOP_IN_SAVE"], "a") as note:
            note.write(str(folder) + "\\n")
        while True:
            time.sleep(1)
    original_save(self, folder, rank)


common.TrainerState.save = save_or_stop
if __name__ == "__main__":  # DataLoader workers import this file and must not run the trainer
    runpy.run_path(sys.argv.pop(1), run_name="__main__")
"""
POLL_SECONDS = 0.005
WORK_STARTS = ("teacher cache", "training")  # the progress bars that follow the start-up


def trainer_options(trainer: str, toy_world, toy_teacher, out: Path) -> tuple[str, list[str]]:
    """The script and options of the runs the issue names: CFA (live and cached teacher), fine-tuning, and SKD with
    the unlabeled stream (and without labels); each checkpoints every 2 steps and keeps 2, with one worker."""
    common = ["--output_dir", str(out), "--num_workers", "1", "--checkpointing_steps", "2"]
    common += ["--checkpoints_total_limit", "2", *QUICK]
    labeled = ["--dataset", str(toy_world["labeled"]), "--head_dropout", "0.1"]
    unlabeled = ["--unlabeled", str(toy_world["unlabeled"]), "--shuffle_buffer", "16"]
    if trainer.startswith("cfa"):
        options = ["--teacher", str(toy_world["clip"]), *unlabeled, "--batch_size", "8", "--num_epochs", "8"]
        if trainer == "cfa-cached":
            options += ["--teacher_cache", str(out / "teacher_cache")]
        return "cfa.py", options + common
    if trainer == "finetune":
        return "finetune.py", [*labeled, "--batch_size", "8", "--num_epochs", "6", *common]
    if trainer == "skd-no-labels":
        return "skd.py", [
            "--teacher", str(toy_teacher), *unlabeled, "--validation_dataset", str(toy_world["labeled"]),
            "--head_dropout", "0.1", "--batch_size", "8", "--num_epochs", "6", *common,
        ]  # fmt: skip
    return "skd.py", [
        *labeled, "--teacher", str(toy_teacher), *unlabeled, "--mu", "2", "--batch_size", "4", "--num_epochs", "3",
        *common,
    ]  # fmt: skip


@dataclass
class Attempt:
    returncode: int
    seconds: float
    work_seconds: float  # from the first progress bar to the end, or to the kill
    mid_save: bool = False  # a checkpoint folder of this attempt was unmarked when the kill landed
    stopped_in: Path | None = None  # the checkpoint folder an aimed kill stopped in


def saving_now(checkpoints: Path, since: float) -> bool:
    """Whether a checkpoint folder written by this attempt (not one left over by an earlier kill) lacks its mark."""
    for folder in checkpoints.glob("checkpoint_*"):
        try:
            if folder.stat().st_mtime >= since and not is_complete(folder):
                return True
        except FileNotFoundError:  # deleted by --checkpoints_total_limit meanwhile
            continue
    return False


def kill_all(marker: str) -> None:
    """SIGKILL every process of a run at once, as a lost node loses them (torchrun's ranks have sessions of their
    own, so a process group does not hold them all); again for any that a dying parent had just forked."""
    for _ in range(5):
        pids = survivors(marker)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def run(command: list[str], env: dict, checkpoints: Path, kill: float | str | None, whole_group: bool) -> Attempt:
    """Run `command` and SIGKILL it (its main process alone, or with `whole_group` every process it started)
    `kill` seconds into its work, or ("save") once it stopped inside its first save."""
    note = checkpoints.parent / "stopped-in-save.txt"
    note.unlink(missing_ok=True)
    marker = uuid.uuid4().hex
    env = {**env, RUN_MARKER: marker, **({"STOP_IN_SAVE": str(note)} if kill == "save" else {})}
    start = time.time()
    process = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr, work_started = [], []
    reader = _drain(process, stderr, work_started)
    mid_save, end = False, None
    try:
        while process.poll() is None:
            elapsed = time.time() - start
            saving = saving_now(checkpoints, start)
            working = time.time() - work_started[0] if work_started else -1.0
            if (kill == "save" and note.exists()) or (isinstance(kill, float) and working >= kill):
                mid_save, end = saving, time.time()
                if whole_group:
                    kill_all(marker)
                else:
                    os.kill(process.pid, signal.SIGKILL)
                process.wait()
                break
            if elapsed > 600:
                raise TimeoutError(f"{command} ran for more than 600 s")
            time.sleep(POLL_SECONDS)
    finally:
        if process.poll() is None:
            kill_all(marker)
        process.wait()
        reader.join(timeout=60)
        assert not reader.is_alive(), "a process of the run still holds its stderr"
    end = end or time.time()
    if process.returncode not in (0, -signal.SIGKILL):
        raise AssertionError("".join(stderr)[-4000:])
    # Nothing of the killed run is left: no rank, no DataLoader worker, no fork server.
    deadline = time.time() + 30
    while survivors(marker) and time.time() < deadline:
        time.sleep(0.1)
    assert survivors(marker) == [], f"left running after the kill: {survivors(marker)}"
    if kill == "save":
        assert process.returncode == -signal.SIGKILL, "the run ended without stopping in a save"
        stopped_in = Path(note.read_text().split()[0])
        assert stopped_in.is_dir() and not is_complete(stopped_in)  # killed mid-save: written, never marked
        work_seconds = end - work_started[0] if work_started else 0.0
        return Attempt(process.returncode, end - start, work_seconds, True, stopped_in)
    return Attempt(process.returncode, end - start, end - work_started[0] if work_started else 0.0, mid_save)


def _drain(process: subprocess.Popen, lines: list[str], work_started: list[float]):
    """Read stderr on a thread (a chatty run never blocks on a full pipe), noting when the first progress bar shows."""
    import threading

    def read():
        for line in process.stderr:
            lines.append(line.decode(errors="replace"))
            if not work_started and any(bar in lines[-1] for bar in WORK_STARTS):
                work_started.append(time.time())

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, pytest.param(2, marks=pytest.mark.distributed)])
@pytest.mark.parametrize("trainer", ["cfa", "cfa-cached", "finetune", "skd", "skd-no-labels"])
def test_random_sigkills_then_latest_end_bit_identical(
    trainer, processes, toy_world, toy_teacher, two_process_config, tmp_path
):
    wrapper = tmp_path / "stops_in_its_first_save.py"
    wrapper.write_text(STOPS_IN_ITS_FIRST_SAVE)

    def command(out: Path, *extra: str) -> list[str]:
        script, options = trainer_options(trainer, toy_world, toy_teacher, out)
        arguments = [str(REPO / "scripts" / script), *options, *extra]
        if processes == 1:
            return [sys.executable, str(wrapper), *arguments]
        return launch_command(two_process_config, wrapper, *arguments)

    env = {**os.environ, **LAUNCH_ENV}
    whole_group = processes > 1
    reference = run(command(tmp_path / "uninterrupted"), env, tmp_path / "none", None, whole_group)
    assert reference.returncode == 0

    out = tmp_path / "killed"
    draw = random.Random(f"{trainer}-{processes}")
    attempts = []
    for aim in KILL_PLAN:
        kill = draw.uniform(0.0, 0.9) * reference.work_seconds if aim == "random" else "save"
        attempt = run(command(out, "--resume_from_checkpoint", "latest"), env, out / "checkpoints", kill, whole_group)
        if attempts and attempts[-1].stopped_in is not None:  # the resume set the unmarked checkpoint aside
            stopped_in = attempts[-1].stopped_in
            assert (stopped_in.parent / f"incomplete_{stopped_in.name}").is_dir()
        attempts.append(attempt)
        if attempt.returncode == 0:  # the resumed run had less left to do than the draw allowed it
            break
    final = run(command(out, "--resume_from_checkpoint", "latest"), env, out / "checkpoints", None, whole_group)
    assert final.returncode == 0

    expected = load_file(str(tmp_path / "uninterrupted" / "model.safetensors"))
    assert same_tensors(expected, load_file(str(out / "model.safetensors")))
    killed = [attempt for attempt in attempts if attempt.returncode == -signal.SIGKILL]
    mid_save = sum(attempt.mid_save for attempt in killed[1:])  # the random kills that found a save under way
    print(
        f"\n{trainer} on {processes} process(es): {len(killed)} SIGKILLs at "
        f"{', '.join(f'{attempt.work_seconds:.1f} s' for attempt in killed)} into the work (the first inside a "
        f"save; {mid_save} random ones mid-save), "
        f"resumed with latest to the uninterrupted weights (run alone: {reference.work_seconds:.1f} s of work, "
        f"{reference.seconds:.1f} s in all)"
    )


def test_verification_is_strict_about_manifests_and_never_restarts_silently(tmp_path):
    """A checkpoint marked with a manifest must still have it; when every complete checkpoint fails, resuming is an
    error (not a silent start from scratch); a folder moved aside never overwrites an earlier one."""
    folder = tmp_path / "checkpoints"
    for number in (0, 1):
        checkpoint = folder / f"checkpoint_{number}"
        checkpoint.mkdir(parents=True)
        (checkpoint / "model.safetensors").write_bytes(b"weights")
        common.write_manifest(checkpoint)
        (checkpoint / COMPLETE_FILE).write_text(json.dumps({"global_step": number, "manifest": common.MANIFEST_FILE}))
    (folder / "checkpoint_1" / common.MANIFEST_FILE).unlink()
    assert common.checkpoint_problem(folder / "checkpoint_1").endswith(f"{common.MANIFEST_FILE} is missing")
    assert common.checkpoint_problem(folder / "checkpoint_0") is None
    (folder / "checkpoint_0" / "model.safetensors").write_bytes(b"weightz")
    (folder / "corrupt_checkpoint_1").mkdir()  # left by an earlier fallback from the same number
    accelerator = SimpleNamespace(is_main_process=True)
    with pytest.raises(OSError, match="none of the 2 complete checkpoints"):
        common.latest_verified(accelerator, [folder / "checkpoint_0", folder / "checkpoint_1"])
    assert sorted(path.name for path in folder.iterdir()) == [
        "corrupt_checkpoint_0",
        "corrupt_checkpoint_1",
        "corrupt_checkpoint_1_2",
    ]
