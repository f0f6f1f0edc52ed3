"""The quickstart's console (`synthetic/console.py`): one line per stage with the time left, and everything else,
whoever writes it, in the log file."""

import io
import subprocess
import sys
import textwrap

from cskd_hf.synthetic.console import StageReporter, duration


def test_durations_read_as_a_person_would_say_them():
    assert [duration(s) for s in (0.4, 42, 185, 3725)] == ["0 s", "42 s", "3 min 05 s", "1 h 02 min"]


def test_time_left_is_the_plans_remaining_cost_at_this_machines_pace():
    console = io.StringIO()
    reporter = StageReporter(console, {"world": 10, "clip": 20, "cfa": 30, "skd": 40})
    reporter.finished("world", 20.0)  # twice as slow as recorded: the 90 s still to run will take 180
    assert reporter.time_left() == 180
    reporter.finished("clip", 20.0)  # now 40 s for 30 recorded: pace 4/3
    assert abs(reporter.time_left() - 70 * 40 / 30) < 1e-9
    reporter.finished("cfa", 30.0)
    last = reporter.finished("skd", 40.0)
    lines = console.getvalue().splitlines()
    assert len(lines) == 4 and lines[0].startswith("[ 1/4] world") and "about 3 min 00 s left" in lines[0]
    assert last.startswith("[ 4/4] skd") and "left" not in last  # nothing is left after the last stage


def test_a_reused_stage_is_counted_and_named_but_does_not_set_the_pace():
    console = io.StringIO()
    reporter = StageReporter(console, {"world": 10, "clip": 20, "cfa": 30})
    kept = reporter.finished("world", 10.0, reused=True)
    assert kept.startswith("[ 1/3] world") and "reused" in kept
    assert reporter.time_left() == 50  # no stage has run yet: the recorded pace
    reporter.finished("clip", 40.0)  # twice as slow as recorded, and only this stage tells
    assert reporter.time_left() == 60


def test_library_output_goes_to_the_log_and_only_the_report_to_the_console(tmp_path):
    """In a child process, as `cskd quickstart` runs: a logging handler made before the redirection, a print, a
    warning and a worker process's output all land in the log, the report on the real stdout."""
    script = textwrap.dedent(
        f"""
        import logging, subprocess, sys, warnings
        from pathlib import Path
        from cskd_hf.synthetic.console import console_and_log
        logging.basicConfig(level=logging.INFO)
        with console_and_log(Path({str(tmp_path / "run.log")!r})) as console:
            print("the report line", file=console)
            print("a library's print")
            logging.getLogger("transformers").warning("LOAD REPORT from a handler made before")
            warnings.warn("a warning nobody can act on")
            subprocess.run([sys.executable, "-c", "import sys; print('a worker', file=sys.stderr)"])
        print("after the block")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["the report line", "after the block"] and result.stderr == ""
    log = (tmp_path / "run.log").read_text()
    for line in ("a library's print", "LOAD REPORT from a handler made before", "a warning nobody", "a worker"):
        assert line in log
    assert "the report line" not in log
