"""One process of a 2-process run dies: the whole run ends promptly, says so, and resumes from its last checkpoint."""

import time

import pytest
from safetensors.torch import load_file

from cskd_hf.training.common import COMPLETE_FILE
from tests.helpers import same_tensors
from tests.training.helpers import REPO, launch, launch_script, survivors
from tests.training.test_trainers import cfa_args

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
    print(f"the run ended {ended - died:.1f} s after rank 1 died")  # for the README (pytest -s)
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
    print(f"the run ended {ended - hung_at:.1f} s after rank 1 hung")  # for the README (pytest -s)
    assert ended - hung_at < 120
    assert survivors(hung.run_marker) == []
    assert (out / "checkpoints" / "checkpoint_0" / COMPLETE_FILE).exists()
