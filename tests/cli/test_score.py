"""`cskd score` (`cskd_hf.cli.score`) on a user's photo folder: the CSV and JSONL it writes, bad files kept as
error rows, its exit codes, and an unwritable output or a damaged model folder named before scoring."""

import csv
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from transformers import pipeline

from cskd_hf.cli import main
from cskd_hf.data.samples import sample_photo
from tests.helpers import AWKWARD_FILES, CSKD, UNREADABLE, write_awkward_images


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory, sample_dir):
    """The sample photos plus every awkward kind of file, in nested folders, as a user's photo folder might be."""
    folder = tmp_path_factory.mktemp("photos")
    for path in sorted(sample_dir.iterdir())[:4]:
        (folder / path.name).write_bytes(path.read_bytes())
    write_awkward_images(folder / "awkward", sample_photo("coffee"))
    return folder


def test_score_folder_end_to_end_with_bad_files(photo_folder, tiny_scorer_dir, tmp_path):
    output = tmp_path / "scores.csv"
    result = subprocess.run(
        [
            CSKD,
            "score",
            str(photo_folder),
            "--model",
            str(tiny_scorer_dir),
            "--output",
            str(output),
            "--batch-size",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(output.open()))
    assert list(rows[0]) == ["path", "score", "std", *[f"p_{i}" for i in range(1, 11)], "error"]
    by_name = {Path(row["path"]).name: row for row in rows}
    assert len(rows) == 4 + len(AWKWARD_FILES)

    for kind in UNREADABLE:
        row = by_name[AWKWARD_FILES[kind]]
        assert row["score"] == "" and AWKWARD_FILES[kind] in row["error"]
        assert f"error: {row['path']}" in result.stderr
    assert "truncated" in by_name["truncated.jpg"]["error"] and "empty" in by_name["empty.jpg"]["error"]

    scored = [row for row in rows if not row["error"]]
    assert len(scored) == len(rows) - len(UNREADABLE)
    assert {"cmyk.jpg", "gray16.png", "exif_rotated.jpg", "palette.png", "alpha.png"} <= {
        Path(r["path"]).name for r in scored
    }
    reference = pipeline("image-aesthetics", model=str(tiny_scorer_dir))([r["path"] for r in scored])
    for row, expected in zip(scored, reference):
        # `cskd score` runs the torch-free runtime, whose uint8 resize (PIL's) is within one 8-bit level of the
        # pipeline's (torchvision's): tests/runtime/test_spec.py.
        assert float(row["score"]) == pytest.approx(expected["score"], abs=5e-4)
        assert float(row["std"]) == pytest.approx(expected["std"], abs=5e-4)
        probabilities = [float(row[f"p_{i}"]) for i in range(1, 11)]
        assert probabilities == pytest.approx(expected["distribution"], abs=5e-4)
    assert f"scored {len(scored)} of {len(rows)} images" in result.stderr


def test_jsonl_to_stdout_from_globs_and_files(photo_folder, tiny_scorer_dir, capsys):
    pattern = str(photo_folder / "awkward" / "*.png")
    code = main(
        [
            "score",
            pattern,
            str(photo_folder / "awkward" / "text.jpg"),
            "--model",
            str(tiny_scorer_dir),
            "--format",
            "jsonl",
            "--no-progress",
        ]
    )
    assert code == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    names = [Path(r["path"]).name for r in records]
    assert names == sorted(n for n in AWKWARD_FILES.values() if n.endswith(".png")) + ["text.jpg"]
    assert all(len(r["distribution"]) == 10 and r["error"] is None for r in records[:-1])
    assert records[-1]["score"] is None and "not a recognised image" in records[-1]["error"]


def test_exit_code_is_nonzero_only_when_nothing_could_be_scored(photo_folder, tiny_scorer_dir, capsys):
    bad = [str(photo_folder / "awkward" / AWKWARD_FILES[kind]) for kind in UNREADABLE]
    assert main(["score", *bad, "--model", str(tiny_scorer_dir), "--no-progress"]) == 1
    assert "scored 0 of 3 images" in capsys.readouterr().err
    assert main(["score", str(photo_folder / "missing.jpg"), "--model", str(tiny_scorer_dir)]) == 2
    assert "missing.jpg: no such file or folder" in capsys.readouterr().err


def test_an_unwritable_output_fails_before_scoring(photo_folder, tiny_scorer_dir, tmp_path, capsys, monkeypatch):
    import cskd_hf.cli.score
    from cskd_hf.runtime.scoring import PortableScorer

    scored = []
    monkeypatch.setattr(PortableScorer, "score_files", lambda *args, **kwargs: scored.append(args) or iter(()))
    monkeypatch.setattr(cskd_hf.cli.score, "torch_results", lambda *args: scored.append(args) or ([], iter(())))
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    output = blocker / "scores.csv"
    assert main(["score", str(photo_folder), "--model", str(tiny_scorer_dir), "-o", str(output)]) == 2
    assert str(output) in capsys.readouterr().err
    assert scored == []


def damage(model_dir, tmp_path, name: str, edit) -> Path:
    folder = tmp_path / name
    shutil.copytree(model_dir, folder)
    edit(folder)
    return folder


def cut_weights_short(folder):
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def rebin_config_only(folder):
    config = json.loads((folder / "config.json").read_text())
    config.update(num_bins=5, bin_scores=[1.0, 2.0, 3.0, 4.0, 5.0])
    config.pop("id2label"), config.pop("label2id")
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("name", "edit", "message"),
    [
        ("no-weights", lambda folder: (folder / "model.safetensors").unlink(), "no file named model.safetensors"),
        ("cut-short", cut_weights_short, "a weights file is damaged"),
        ("empty-weights", lambda folder: (folder / "model.safetensors").write_bytes(b""), "a weights file is damaged"),
        ("bad-config", lambda folder: (folder / "config.json").write_text("{not json"), "not a valid JSON file"),
        ("bins-disagree", rebin_config_only, "weights of other shapes than config.json says"),
    ],
)
def test_a_damaged_model_folder_is_named(photo_folder, tiny_scorer_dir, tmp_path, capsys, name, edit, message):
    folder = damage(tiny_scorer_dir, tmp_path, name, edit)
    assert main(["score", str(photo_folder), "--model", str(folder), "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert message in error and name in error, error[-2000:]
