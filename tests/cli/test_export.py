"""`cskd export --web`: the page gets a graph for any batch size, and what it cannot take is refused first."""

import shutil

import pytest

from cskd_hf.cli import main
from cskd_hf.runtime.scoring import OnnxSession
from cskd_hf.runtime.web import RUNTIME_FILES, web_assets

pytestmark = pytest.mark.skipif(
    not all((web_assets() / "vendor" / name).is_file() for name in RUNTIME_FILES),
    reason="onnxruntime-web is not installed: run `make web-vendor`",
)


def test_the_page_gets_a_graph_for_any_batch_size(tiny_scorer_dir, tmp_path, capsys):
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_scorer_dir, model_dir)
    assert main(["export", "--model", str(model_dir), "--batch-size", "4"]) == 0
    assert OnnxSession(model_dir / "onnx" / "model.onnx").fixed_batch_size == 4
    assert main(["export", "--model", str(model_dir), "--web", str(tmp_path / "site")]) == 0
    assert OnnxSession(tmp_path / "site" / "model.onnx").fixed_batch_size is None  # exported again, into the cache
    assert OnnxSession(model_dir / "onnx" / "model.onnx").fixed_batch_size == 4  # the user's graph left alone
    assert main(["export", "--model", str(model_dir), "--web", str(tmp_path / "other"), "--batch-size", "2"]) == 2
    assert "leave out --batch-size" in capsys.readouterr().err


def test_a_title_with_a_colon_stays_one_value_of_the_spaces_front_matter(tiny_scorer_dir, tmp_path):
    import yaml

    site = tmp_path / "site"
    assert main(["export", "--model", str(tiny_scorer_dir), "--web", str(site), "--title", 'Scores: "mine"']) == 0
    front_matter = (site / "README.md").read_text().split("---")[1]
    assert yaml.safe_load(front_matter)["title"] == 'Scores: "mine"'
    assert yaml.safe_load(front_matter)["sdk"] == "static"
