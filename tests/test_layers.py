"""The package's layers (setup.cfg's import-linter contracts, drawn in docs/design.md) hold: each layer
imports only from the layers below it, so there is no cycle; inference and training are independent stacks; the
model folder imports nothing of the package outside it; the torch-free runtime imports no torch, timm or
transformers."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_each_layer_imports_only_from_the_layers_below_it():
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    result = subprocess.run([lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 4 kept, 0 broken." in result.stdout
