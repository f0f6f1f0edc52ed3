"""`benchmarks/checkpoint_verify.py`: the cost of a checkpoint's manifest, measured on files of a model's sizes."""

import subprocess
import sys

from tests.benchmarks.helpers import REPO


def test_it_prints_the_cost_of_writing_and_checking_a_manifest():
    script = REPO / "benchmarks" / "checkpoint_verify.py"
    result = subprocess.run(
        [sys.executable, str(script), "--parameters", "1000000"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    header, rule, row = result.stdout.strip().splitlines()
    assert header == "| checkpoint | size | write the manifest | verify |" and rule == "|---|---|---|---|"
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[0] == "1.0M parameters, fp32 + Adam" and cells[1] == "0.01 GiB"  # 12 MB of weights and moments
    assert all(cell.endswith(" s") and float(cell[:-2]) >= 0 for cell in cells[2:])
