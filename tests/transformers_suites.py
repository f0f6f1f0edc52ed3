"""transformers' own common test suites, fetched at test time from the installed version's sdist.

The sdist on the package registry ships `tests/test_*_common.py` but not three modules they import relatively
(`exporters/test_export.py`, `generation/test_utils.py`, `utils/test_configuration_utils.py`). Those are written here
as small stand-ins, each saying what it replaces; nothing of transformers' code is committed to this repository.
"""

import importlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import transformers

PACKAGE = "transformers_common_tests"
# pytest's config, which `tests/conftest.py` puts here: the suites' markers are declared to it once they are fetched.
PYTEST_CONFIG = []
SUITES = ("test_modeling_common.py", "test_configuration_common.py", "test_image_processing_common.py")

# Stand-ins for the modules the sdist leaves out.
STAND_INS = {
    # Export tests need `torch.export` tooling from the repository's `tests/exporters`; our models are exported with
    # `cskd export` (ONNX) and tested there.
    "exporters/test_export.py": "class ExportTesterMixin:\n    pass\n",
    # Generation tests concern models that `generate`; ours never do (`can_generate()` is False).
    "generation/test_utils.py": "class GenerationTesterMixin:\n    pass\n",
    # `ConfigTester.check_config_arguments_init` passes every attribute of a bare `PreTrainedConfig` with a
    # non-default value and checks that the config keeps it. The repository's table is not in the sdist, so the
    # values are derived from `PreTrainedConfig()` itself. Labels get two entries, not one: the fewest bins a
    # distribution over scores can have.
    "utils/test_configuration_utils.py": """
import torch
from transformers import PreTrainedConfig

_OVERRIDES = {
    "dtype": "float16",
    "id2label": {0: "low", 1: "high"},
    "label2id": {"low": 0, "high": 1},
    "problem_type": "regression",
    "architectures": ["CSKDForAestheticScoring"],
}
_SKIP = {"transformers_version", "is_encoder_decoder", "num_labels"}


def _changed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 3
    if isinstance(value, float):
        return value + 0.5
    if value is None:
        return 7
    return None


def _common_kwargs():
    kwargs = dict(_OVERRIDES)
    for key, value in vars(PreTrainedConfig()).items():
        if key in kwargs or key in _SKIP or key.startswith("_"):
            continue
        changed = _changed(value)
        if changed is not None:
            kwargs[key] = changed
    return kwargs


config_common_kwargs = _common_kwargs()
""",
}

# `test_image_processing_common` imports this from the repository's `utils/` to map fixture URLs to downloaded files.
# No download here: the COCO photo of two cats becomes scikit-image's photo of a cat, written on first use.
HUB_FIXTURES_STAND_IN = """
from pathlib import Path


def url_to_local_path(url):
    if not url.endswith("000000039769.jpg"):
        raise RuntimeError(f"no local stand-in for the test fixture {url}")
    path = Path(__file__).with_name("cats.jpg")
    if not path.exists():
        from PIL import Image
        from skimage import data

        Image.fromarray(data.chelsea()).save(path, quality=95)
    return str(path)
"""


def cache_dir() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return root / "cskd-hf" / f"transformers-{transformers.__version__}-tests"


def fetch_suites() -> Path:
    """Download the installed transformers version's sdist once and unpack its common suites as a package.

    Returns the folder to put on `sys.path`; raises `RuntimeError` when the registry cannot be reached.
    """
    root = cache_dir()
    package = root / PACKAGE
    if all((package / name).exists() for name in SUITES):
        return root
    with tempfile.TemporaryDirectory() as download:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"]
        command += ["--dest", download, f"transformers=={transformers.__version__}"]
        # pip reads the sdist's metadata with setuptools: the environment's own if it has one, else an isolated one.
        result = subprocess.run([*command, "--no-build-isolation"], capture_output=True, text=True)
        if result.returncode != 0:
            result = subprocess.run(command, capture_output=True, text=True)
        archives = list(Path(download).glob("transformers-*.tar.gz"))
        if not archives:
            raise RuntimeError(f"could not download the transformers sdist: {result.stderr.strip()[-2000:]}")
        partial = root / f"{PACKAGE}.partial"
        partial.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archives[0]) as archive:
            for member in archive.getmembers():
                parts = Path(member.name).parts
                if len(parts) == 3 and parts[1] == "tests" and parts[2] in SUITES:
                    (partial / parts[2]).write_bytes(archive.extractfile(member).read())
    missing = [name for name in SUITES if not (partial / name).exists()]
    if missing:
        raise RuntimeError(
            f"the transformers {transformers.__version__} sdist has no tests/{', tests/'.join(missing)}"
        )
    (partial / "__init__.py").write_text("")
    (root / "utils").mkdir(exist_ok=True)
    (root / "utils" / "fetch_hub_objects_for_ci.py").write_text(HUB_FIXTURES_STAND_IN)
    for relative, source in STAND_INS.items():
        path = partial / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").write_text("")
        path.write_text(source)
    if package.exists():
        shutil.rmtree(package)
    partial.rename(package)
    return root


def register_markers(config, root: Path) -> None:
    """The suites mark tests with markers of their own (`flash_attn_3_test`, ...); `--strict-markers` needs them
    declared, and which ones a version uses is known only once its sdist is here."""
    names = set()
    for suite in SUITES:
        names.update(re.findall(r"\bmark\.(\w+)", (root / PACKAGE / suite).read_text(encoding="utf-8")))
    for name in sorted(names - {"slow", "parametrize", "skip", "skipif", "xfail", "usefixtures", "filterwarnings"}):
        config.addinivalue_line("markers", f"{name}: a marker of transformers' common suites")


def import_suite(name: str, config=None):
    """Import one of the suites (`"test_modeling_common"`, ...) from the cache, declaring its markers to pytest's
    `config`."""
    root = fetch_suites()
    if config is not None:
        register_markers(config, root)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return importlib.import_module(f"{PACKAGE}.{name}")
