"""A torch-free install: where importing torch, torchvision, timm or transformers fails, `cskd` still shows its help
and scores a folder with an exported model, and says what to install for the rest."""

import csv
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import UNREADABLE


def torch_extra_modules() -> set[str]:
    """The modules of setup.cfg's `torch` extra: what `pip install cskd-hf` does not install."""
    import configparser

    config = configparser.ConfigParser()
    config.read(Path(__file__).resolve().parents[2] / "setup.cfg")
    lines = [line.strip() for line in config["options.extras_require"]["torch"].splitlines()]
    names = {re.split(r"[<>=!~\[ ]", line, maxsplit=1)[0].lower() for line in lines if line and line[0] != "#"}
    return {{"pyyaml": "yaml"}.get(name, name.replace("-", "_")) for name in names}


# Run `cskd` where those packages cannot be imported, as after `pip install cskd-hf` without the torch extra.
WITHOUT_TORCH = """
import importlib.abc, sys

class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, NotInstalled())
from cskd_hf.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:  # --help, --version
    code = exit.code
loaded = sorted(name for name in BLOCKED if name in sys.modules)
print("loaded:", ",".join(loaded) or "none", file=sys.stderr)
sys.exit(code)
"""


def cskd_without_torch(*args) -> subprocess.CompletedProcess:
    code = f"BLOCKED = {sorted(torch_extra_modules())!r}\n" + WITHOUT_TORCH
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=120)


def test_the_blocked_modules_are_the_torch_extras():
    assert {"torch", "torchvision", "timm", "transformers", "accelerate", "datasets", "scipy", "yaml"} <= (
        torch_extra_modules()
    )
    assert not {"numpy", "PIL", "onnxruntime", "huggingface_hub"} & torch_extra_modules()


def test_help_and_scoring_an_exported_model_need_no_torch(exported_model, photos, tmp_path):
    assert cskd_without_torch("--help").returncode == 0
    output = tmp_path / "scores.csv"
    result = cskd_without_torch("score", photos, "--model", exported_model, "--output", output, "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "loaded: none" in result.stderr
    rows = list(csv.DictReader(output.open()))
    assert len(rows) == len([p for p in photos.rglob("*") if p.is_file()])
    assert sum(bool(row["error"]) for row in rows) == len(UNREADABLE)
    assert all(1 <= float(row["score"]) <= 10 for row in rows if not row["error"])


def test_the_web_page_of_an_exported_model_needs_no_torch(exported_model, tmp_path):
    from cskd_hf.runtime.web import RUNTIME_FILES, web_assets

    if not all((web_assets() / "vendor" / name).is_file() for name in RUNTIME_FILES):
        pytest.skip("onnxruntime-web is not installed: run `make web-vendor`")
    result = cskd_without_torch("export", "--model", exported_model, "--web", tmp_path / "site")
    assert result.returncode == 0 and "loaded: none" in result.stderr, result.stderr
    written = {path.name for path in (tmp_path / "site").iterdir()}
    assert {"index.html", "app.js", "model.onnx", "spec.json", "README.md", *RUNTIME_FILES} <= written
    assert (tmp_path / "site" / "model.onnx").read_bytes() == (exported_model / "onnx" / "model.onnx").read_bytes()


def test_a_graph_in_the_cache_alone_scores_without_torch(tiny_scorer_dir, sample_dir, tmp_path, monkeypatch):
    from cskd_hf.cli import main

    model_dir = tmp_path / "model"  # no onnx/: the graph is the cache's
    shutil.copytree(tiny_scorer_dir, model_dir)
    monkeypatch.setenv("CSKD_ONNX_CACHE", str(tmp_path / "cache"))
    assert main(["score", str(sample_dir), "--model", str(model_dir), "--no-progress"]) == 0  # exports, with torch
    assert not (model_dir / "onnx").exists()
    for backend in ("auto", "onnxruntime"):
        result = cskd_without_torch("score", sample_dir, "--model", model_dir, "--backend", backend)
        assert result.returncode == 0 and "loaded: none" in result.stderr, result.stderr
        assert len(result.stdout.splitlines()) == 1 + len(list(sample_dir.iterdir()))


def test_what_needs_torch_says_which_extra_to_install(tiny_scorer_dir, photos, tmp_path, monkeypatch):
    monkeypatch.setenv("CSKD_ONNX_CACHE", str(tmp_path / "empty-cache"))
    result = cskd_without_torch("score", photos, "--model", tiny_scorer_dir)  # no graph anywhere: needs an export
    assert result.returncode == 2
    assert "exporting one needs torch" in result.stderr and "pip install cskd-hf[torch]" in result.stderr
    result = cskd_without_torch("init", "--architecture", "mobilenetv2_100", "--out", tmp_path / "untrained")
    assert result.returncode == 2
    assert "which comes with the torch extra: pip install 'cskd-hf[torch]'" in result.stderr


@pytest.mark.parametrize("command", [["--version"], ["score", "--help"], ["export", "--help"]])
def test_the_command_line_loads_no_torch_to_answer(command):
    result = cskd_without_torch(*command)
    assert result.returncode == 0 and "loaded: none" in result.stderr
