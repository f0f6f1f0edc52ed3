import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.helpers import RUN_MARKER, survivors
from tests.training.toy import write_tiny_clip, write_toy_labeled, write_toy_unlabeled

REPO = Path(__file__).resolve().parents[2]
ACCELERATE = str(Path(sys.executable).parent / "accelerate")
# Tiny models and short runs: the options every trainer test shares.
QUICK = ["--architecture", "test_resnet", "--image_size", "32", "--report_to", "none", "--learning_rate", "1e-3"]


@pytest.fixture(scope="session")
def toy_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    unlabeled = write_toy_unlabeled(root / "unlabeled", count=32)
    (unlabeled / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n but then nothing")
    return {
        "labeled": write_toy_labeled(root / "labeled"),
        "unlabeled": unlabeled,
        "clip": write_tiny_clip(root / "clip"),
    }


@pytest.fixture(scope="session")
def toy_teacher(toy_world, tmp_path_factory):
    """A scoring model fine-tuned on the toy data, in process: the teacher of the SKD tests."""
    from cskd_hf.training.supervised import main

    out = tmp_path_factory.mktemp("teacher")
    main(
        [
            "--dataset",
            str(toy_world["labeled"]),
            "--output_dir",
            str(out),
            "--num_epochs",
            "3",
            "--batch_size",
            "8",
            "--num_workers",
            "0",
            "--head_dropout",
            "0.1",
            *QUICK,
        ]
    )
    return out


@pytest.fixture(scope="session")
def two_process_config(tmp_path_factory):
    """An Accelerate config for 2 processes on this CPU-only machine.

    `accelerate launch --cpu --num_processes 2` starts a single process unless MPI is installed, so the test launches
    through torchrun (`MULTI_GPU`) with `ACCELERATE_USE_CPU=1`, which gives 2 processes talking over gloo.
    """
    path = tmp_path_factory.mktemp("accelerate") / "two_cpu_processes.yaml"
    config = {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": "MULTI_GPU",
        "num_machines": 1,
        "num_processes": 2,
        "gpu_ids": "all",
        "machine_rank": 0,
        "mixed_precision": "no",
        "rdzv_backend": "static",
        "same_network": True,
        "use_cpu": False,
    }
    path.write_text(json.dumps(config))  # YAML is a superset of JSON
    return path


def launch(config: Path, script: str, *args: str) -> subprocess.CompletedProcess:
    """`accelerate launch` one of scripts/ on 2 processes; asserts that it succeeded."""
    result = launch_script(config, REPO / "scripts" / script, *args)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def launch_command(config: Path, script: Path, *args: str) -> list[str]:
    """The `accelerate launch` command line for a script, on a free port; run it with `LAUNCH_ENV`."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return [ACCELERATE, "launch", "--config_file", str(config), "--main_process_port", str(port), str(script), *args]


LAUNCH_ENV = {"ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}


def launch_script(config: Path, script: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`accelerate launch` a script; the result's `run_marker` finds every process it started (`survivors`)."""
    command = launch_command(config, script, *args)
    marker = uuid.uuid4().hex
    env = {**os.environ, **LAUNCH_ENV, RUN_MARKER: marker, **(env or {})}
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO, start_new_session=True
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            for pid in [process.pid, *survivors(marker)]:  # no rank or worker left behind to hang the suite
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            raise
    result = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    result.run_marker = marker
    return result


def rank_states(checkpoint: Path) -> list[dict]:
    return [json.loads((checkpoint / f"trainer_state_rank{rank}.json").read_text()) for rank in (0, 1)]


def last_checkpoint(output_dir: Path) -> Path:
    return max((output_dir / "checkpoints").glob("checkpoint_*"), key=lambda p: int(p.name.split("_")[1]))
