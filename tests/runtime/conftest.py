"""A tiny scorer with its exported graph and spec, as `cskd export` leaves it."""

import shutil

import pytest

from cskd_hf.cli import main


@pytest.fixture(scope="module")
def exported_model(tiny_scorer_dir, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("runtime") / "model"
    shutil.copytree(tiny_scorer_dir, model_dir)
    assert main(["export", "--model", str(model_dir)]) == 0
    return model_dir
