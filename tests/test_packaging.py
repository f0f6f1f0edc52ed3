"""The install story: the wheel's core requirements are the torch-free runtime's, the models and trainers come with
the `torch` extra, and the wheel carries the model cards' templates and the browser page with onnxruntime-web."""

import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", str(REPO)]
    subprocess.run([*command, "--wheel-dir", str(out)], check=True, capture_output=True, timeout=300)
    (path,) = out.glob("cskd_hf-*.whl")
    return path


def requirements(wheel: Path) -> dict[str | None, set[str]]:
    """The wheel's Requires-Dist names by extra (None: the core)."""
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
        message = Parser().parsestr(archive.read(metadata).decode())
    by_extra: dict[str | None, set[str]] = {}
    for requirement in message.get_all("Requires-Dist"):
        spec, _, marker = requirement.partition(";")
        name = spec.split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip().lower().replace("_", "-")
        extra = marker.split("extra ==")[1].strip().strip("'\"") if "extra ==" in marker else None
        by_extra.setdefault(extra, set()).add(name)
    return by_extra


def test_a_plain_install_is_the_torch_free_runtime(wheel):
    by_extra = requirements(wheel)
    assert by_extra[None] == {"numpy", "pillow", "onnxruntime", "huggingface-hub", "tqdm"}
    torch_extra = {"torch", "torchvision", "timm", "transformers", "accelerate", "datasets", "onnxscript"}
    assert torch_extra <= by_extra["torch"]
    assert "cskd-hf" in by_extra["dev"] and "cskd-hf" in by_extra["demo"]  # both bring the torch extra


def test_the_wheel_carries_the_templates_and_the_browser_page(wheel):
    from cskd_hf.runtime.web import RUNTIME_FILES, web_assets

    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"cskd_hf/templates/model_card.md", "cskd_hf/web/index.html", "cskd_hf/web/app.js"} <= names
    if not all((web_assets() / "vendor" / name).is_file() for name in RUNTIME_FILES):
        pytest.skip("onnxruntime-web is not installed here (`make web-vendor`): the wheel cannot carry it")
    assert {f"cskd_hf/web/vendor/{name}" for name in RUNTIME_FILES} <= names
