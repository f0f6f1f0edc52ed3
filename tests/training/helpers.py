"""Running the trainers as a user does: `accelerate launch` on 2 CPU processes, the options the trainer tests share,
and finding what they left behind."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ACCELERATE = str(Path(sys.executable).parent / "accelerate")
# Tiny models and short runs: the options every trainer test shares.
QUICK = ["--architecture", "test_resnet", "--image_size", "32", "--report_to", "none", "--learning_rate", "1e-3"]

RUN_MARKER = "CSKD_TEST_RUN"


def survivors(marker: str) -> list[int]:
    """The live processes started with `CSKD_TEST_RUN=<marker>` in their environment, whatever their session or
    parent (torchrun starts each rank in a session of its own; a rank whose launcher died is re-parented to PID 1).
    Zombies waiting for PID 1 to reap them do not count."""
    alive = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if f"{RUN_MARKER}={marker}".encode() not in environ.read_bytes().split(b"\0"):
                continue
            state = (environ.parent / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:  # ended meanwhile, or not ours to read
            continue
        if state != "Z":
            alive.append(int(environ.parent.name))
    return alive


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


def rank_states(checkpoint: Path) -> list[dict]:
    return [json.loads((checkpoint / f"trainer_state_rank{rank}.json").read_text()) for rank in (0, 1)]


def last_checkpoint(output_dir: Path) -> Path:
    return max((output_dir / "checkpoints").glob("checkpoint_*"), key=lambda p: int(p.name.split("_")[1]))


def rank_states_single(checkpoint):
    import json

    return json.loads((checkpoint / "trainer_state_rank0.json").read_text())
