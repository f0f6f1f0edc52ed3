"""Running the scripts of benchmarks/ as a user runs them, and the rows their reports share."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SIZES = ("AVA-like (500-800 px)", "OpenImages-like (1024 px)", "camera (4000 px)")
SHARDS = "256-px shards (Parquet)"


def run(script: str, *args: str) -> str:
    command = [sys.executable, str(REPO / "benchmarks" / script), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout
