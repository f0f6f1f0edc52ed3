"""Real kills: SIGKILL a training run at random moments, resume with `latest` each time, and end where an
uninterrupted run with the same seed ends, bit for bit.

A single process is killed alone (what the OOM killer does: its DataLoader workers and fork server must follow it);
a 2-process `accelerate launch` loses every process at once (a preempted or lost node). The first kill of
each run lands inside its first checkpoint save, after Accelerate wrote the weights and before the checkpoint is
marked complete (the run is held there until killed, so this does not depend on timing); the others land where the
seeded draw puts them, mid-save or not, before the first checkpoint or after the last. The assertions hold wherever
a kill lands: that is the promise under test.

    pytest -m slow tests/training/test_random_kills.py -s   # -s prints what each kill hit
"""

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from safetensors.torch import load_file

from cskd_hf.training.common import is_complete
from tests.helpers import same_tensors
from tests.training.helpers import LAUNCH_ENV, QUICK, REPO, RUN_MARKER, launch_command, survivors

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
