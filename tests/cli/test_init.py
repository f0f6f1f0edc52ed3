"""`cskd init` (`cskd_hf.cli.init`): an untrained model folder that the pipeline loads."""

from PIL import Image
from transformers import pipeline

from cskd_hf.cli import main


def test_init_writes_a_loadable_untrained_model(tmp_path, capsys):
    out = tmp_path / "untrained"
    assert (
        main(
            [
                "init",
                "--architecture",
                "test_vit",
                "--image-size",
                "64",
                "--bin-scores",
                "1",
                "2",
                "3",
                "4",
                "5",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "UNTRAINED" in capsys.readouterr().out
    scorer = pipeline("image-aesthetics", model=str(out))
    prediction = scorer(Image.new("RGB", (64, 64), (10, 200, 30)))
    assert len(prediction["distribution"]) == 5 and 1 <= prediction["score"] <= 5
