"""`import cskd_hf` and `cskd --help` load no deep-learning library; the models and the pipeline register when their
names are used, or with `cskd_hf.register()`. Each check runs in a fresh interpreter: this one has loaded them all."""

import argparse
import json
import subprocess
import sys

import pytest

import cskd_hf
from cskd_hf.cli.cskd_cli import build_parser
from tests.helpers import CSKD

HEAVY = ("torch", "timm", "transformers", "datasets", "accelerate")

LOADED_HEAVY = f"""
import json, sys
print(json.dumps([name for name in {HEAVY!r} if name in sys.modules]))
"""

REGISTERED = """
import json
import transformers
from transformers.pipelines import PIPELINE_REGISTRY

print(json.dumps({
    "config": type(transformers.AutoConfig.for_model("cskd")).__name__,
    "pipeline": "image-aesthetics" in PIPELINE_REGISTRY.get_supported_tasks(),
}))
"""


def run_python(code: str):
    """The JSON that `code` prints last, run by a fresh interpreter."""
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_importing_the_package_loads_no_deep_learning_library():
    assert run_python("import cskd_hf; cskd_hf.__version__; dir(cskd_hf)" + LOADED_HEAVY) == []


def test_building_the_cskd_parser_loads_no_deep_learning_library():
    code = """
import contextlib, io
from cskd_hf.cli.cskd_cli import build_parser

with contextlib.redirect_stdout(io.StringIO()):
    try:
        build_parser().parse_args(["--help"])
    except SystemExit:
        pass
"""
    assert run_python(code + LOADED_HEAVY) == []


def test_version_works():
    completed = subprocess.run([CSKD, "--version"], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0 and completed.stdout.strip() == f"cskd {cskd_hf.__version__}"


def test_a_model_name_registers_the_models_and_the_pipeline():
    assert run_python("from cskd_hf import CSKDConfig" + REGISTERED) == {"config": "CSKDConfig", "pipeline": True}


def test_register_registers_the_models_and_the_pipeline():
    code = "import cskd_hf\nassert cskd_hf.register() is None\ncskd_hf.register()\n"
    assert run_python(code + REGISTERED) == {"config": "CSKDConfig", "pipeline": True}


def test_the_lazy_names_are_the_real_ones():
    from cskd_hf.inference.pipeline import ImageAestheticsPipeline
    from cskd_hf.models.cskd import CSKDConfig, CSKDModel
    from cskd_hf.zoo import list_models

    assert (cskd_hf.CSKDConfig, cskd_hf.CSKDModel) == (CSKDConfig, CSKDModel)
    assert (cskd_hf.ImageAestheticsPipeline, cskd_hf.list_models) == (ImageAestheticsPipeline, list_models)
    assert set(cskd_hf.__all__) <= set(dir(cskd_hf))
    with pytest.raises(AttributeError, match="no attribute 'CSKDNothing'"):
        cskd_hf.CSKDNothing  # noqa: B018


def subcommand_choices(*path: str, dest: str) -> tuple:
    """The choices of the argument `dest` of the `cskd` subcommand `path`."""
    parser = build_parser()
    for name in path:
        subparsers = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
        parser = subparsers.choices[name]
    return tuple(next(action for action in parser._actions if action.dest == dest).choices)


def test_the_parsers_choices_are_what_the_commands_take():
    """The parsers list the choices themselves, not to load the modules that implement them."""
    from cskd_hf.cli.results import OUTPUT_FORMATS
    from cskd_hf.convert import CONVERTERS
    from cskd_hf.data.prepare import LOADERS
    from cskd_hf.inference.scoring import BACKENDS

    assert subcommand_choices("convert", dest="source") == tuple(CONVERTERS)
    assert subcommand_choices("score", dest="backend") == BACKENDS  # the pipeline's `backend` takes the same
    assert subcommand_choices("data", "prepare", dest="dataset") == tuple(LOADERS)
    assert subcommand_choices("score", dest="format") == OUTPUT_FORMATS
