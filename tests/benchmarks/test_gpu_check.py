"""`benchmarks/gpu_check.py`, which cannot run in full here, still runs: its smoke plan on the CPU, rows checked;
its full plan refuses a machine without a GPU."""

import json
import math
import subprocess
import sys

import torch

from tests.benchmarks.helpers import REPO


def test_gpu_check_runs_its_smoke_plan_on_the_cpu(tmp_path):
    out = tmp_path / "gpu_check.json"
    command = [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--smoke", "--json", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    names = [row["row"] for row in report["rows"]]
    for expected in ("CFA, live teacher, fp32", "CFA, cached teacher, bf16 + channels-last", "SKD, mu = 2, fp32"):
        assert expected in names
    assert any(name.startswith("input pipeline") for name in names) and any("cskd score" in name for name in names)
    assert all(math.isfinite(row["images/s"]) and row["images/s"] > 0 for row in report["rows"])
    assert "| CFA, live teacher, fp32 |" in result.stdout  # the table a user reads
    if not torch.cuda.is_available():  # the full plan refuses to run on a CPU
        full = subprocess.run(
            [sys.executable, str(REPO / "benchmarks" / "gpu_check.py")], capture_output=True, text=True
        )
        assert full.returncode != 0 and "no GPU here" in full.stderr
