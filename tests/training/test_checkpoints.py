"""A kill while a checkpoint is being written never leaves a checkpoint that `latest` picks and then cannot load."""

import json
import logging
import os
import pickle
import signal
import subprocess
import sys
from types import SimpleNamespace

import accelerate.checkpointing
import pytest
from accelerate import Accelerator
from transformers import AutoModelForImageClassification

from cskd_hf.models.fingerprint import weights_fingerprint
from cskd_hf.training import common, supervised
from cskd_hf.training.common import COMPLETE_FILE
from tests.helpers import write_hostile_pickle
from tests.training.helpers import QUICK

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


def test_resuming_runs_no_pickle_from_a_checkpoint(toy_world, tmp_path):
    out = tmp_path / "run"
    supervised.train(supervised.parse_arguments(supervised.FinetuneArguments, finetune_args(toy_world, out)))
    checkpoint = max((out / "checkpoints").glob("checkpoint_*"))
    marker = tmp_path / "code-ran"
    resumed = finetune_args(toy_world, tmp_path / "resumed", "--resume_from_checkpoint", str(checkpoint))
    write_hostile_pickle(checkpoint / "optimizer.bin", marker)  # Accelerate's pickled part of a checkpoint
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
