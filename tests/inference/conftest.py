"""The exported tiny scorer that the ONNX export and scoring tests share."""

import shutil

import pytest

from cskd_hf.cli import main


@pytest.fixture(scope="module")
def exported_dir(tiny_scorer_dir, tmp_path_factory):
    """A copy of the tiny scorer with its dynamic-batch ONNX graph and the int8 copy, written by the CLI."""
    model_dir = tmp_path_factory.mktemp("exported") / "model"
    shutil.copytree(tiny_scorer_dir, model_dir)
    assert main(["export", "--model", str(model_dir), "--quantize"]) == 0
    return model_dir
