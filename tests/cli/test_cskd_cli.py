"""`cskd_hf.cli.cskd_cli`: the `cskd` command's help, on its own and per subcommand."""

import subprocess

from tests.helpers import CSKD


def test_help_is_useful_on_its_own():
    top = subprocess.run([CSKD, "--help"], capture_output=True, text=True, timeout=120)
    assert top.returncode == 0 and "score" in top.stdout and "examples:" in top.stdout
    score = subprocess.run([CSKD, "score", "--help"], capture_output=True, text=True, timeout=120)
    for option in ("--model", "--output", "--batch-size", "--device", "glob"):
        assert option in score.stdout
