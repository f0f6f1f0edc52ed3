"""How the quickstart talks: one line per stage on the console, with the time left, and everything else (library load
reports, progress bars, warnings, the trainers' logs) in a log file."""

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO


@contextlib.contextmanager
def console_and_log(log_path: Path, verbose: bool = False) -> Iterator[TextIO]:
    """The console to report to, while this process's standard output and error go to `log_path`.

    The redirection is of the file descriptors, so it also takes what libraries write through handlers made before
    (transformers' logging), what the DataLoader workers print, and C-level output. With `verbose` nothing is
    redirected: everything shows, as `TRANSFORMERS_VERBOSITY` and the logging levels say.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if verbose:
        yield sys.stdout
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    console = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    with open(log_path, "a", encoding="utf-8") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield console
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
            os.close(saved_out)
            os.close(saved_err)
            console.close()


def duration(seconds: float) -> str:
    """`42 s`, `3 min 05 s`, `1 h 02 min`."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class StageReporter:
    """One console line per finished stage: its number, name and time, and an estimate of the time left.

    The estimate is the plan's recorded stage costs (`expected`, seconds on 2 idle cores) of the stages still to run,
    scaled by how this machine has compared with them so far. A stage kept from an earlier run (`reused`) is counted
    and named but takes no time now.
    """

    def __init__(self, console: TextIO, expected: dict[str, float]):
        self.console, self.expected = console, expected
        self.done: dict[str, float] = {}
        self.reused: set[str] = set()
        self.start = time.perf_counter()

    def time_left(self) -> float:
        ran = {name: seconds for name, seconds in self.done.items() if name not in self.reused}
        expected_done = sum(self.expected.get(name, seconds) for name, seconds in ran.items())
        pace = sum(ran.values()) / expected_done if expected_done else 1.0
        return pace * sum(seconds for name, seconds in self.expected.items() if name not in self.done)

    def finished(self, name: str, seconds: float, reused: bool = False) -> str:
        self.done[name] = seconds
        if reused:
            self.reused.add(name)
        total = max(len(self.expected), len(self.done))
        line = f"[{len(self.done):2d}/{total}] {name:<46} {'reused' if reused else duration(seconds):>10}"
        left = self.time_left()
        line += f"   about {duration(left)} left" if left >= 1 else ""
        print(line, file=self.console, flush=True)
        return line


__all__ = ["StageReporter", "console_and_log", "duration"]
