"""`cskd_hf.data.prepare`: `cskd data prepare` writes Parquet that loads and streams, and a labeled Parquet folder
with the wrong schema (at `--dataset` or `cskd evaluate`) is refused naming the file and the column before
anything is read."""

import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import load_dataset

from cskd_hf.cli import main
from cskd_hf.data.ava import load_ava
from cskd_hf.data.prepare import load_labeled
from tests.training.toy import write_toy_labeled


def test_cli_prepare_writes_parquet_that_loads_and_streams(ava_root, tmp_path, capsys):
    out = tmp_path / "ava-parquet"
    assert main(["data", "prepare", "ava", "--root", str(ava_root), "--out", str(out)]) == 0
    assert "train 4, test 2" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "data").iterdir()) == [
        "test-00000-of-00001.parquet",
        "train-00000-of-00001.parquet",
    ]
    assert len((out / "dropped_images.tsv").read_text().splitlines()) == 3
    card = (out / "README.md").read_text()
    assert "keep this dataset\nprivate" in card and "data/train-*.parquet" in card

    reloaded = load_dataset("parquet", data_files={"train": str(out / "data" / "train-*.parquet")})["train"]
    original = load_ava(ava_root, verify="exists")["train"]
    assert reloaded["image_id"] == original["image_id"]
    np.testing.assert_allclose(reloaded["mean_score"], original["mean_score"])
    assert np.array_equal(np.asarray(reloaded[0]["image"]), np.asarray(original[0]["image"]))  # embedded bytes

    streamed = load_dataset(str(out), split="test", streaming=True)  # through the card's configs
    rows = list(streamed)
    assert [row["image_id"] for row in rows] == ["953958", "954175"]
    assert rows[0]["image"].size == (96, 72) and len(rows[0]["distribution"]) == 10


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return write_toy_labeled(tmp_path_factory.mktemp("toy"), sizes={"train": 8, "test": 8}, image_size=16)


def first_shard(folder, split="test"):
    return sorted(folder.glob(f"data/{split}-*.parquet"))[0]


def rewrite(prepared, tmp_path, change):
    """A copy of the prepared folder whose test shard went through `change(table) -> table`."""
    folder = tmp_path / "prepared"
    for shard in prepared.glob("data/*.parquet"):
        (folder / "data").mkdir(parents=True, exist_ok=True)
        (folder / "data" / shard.name).write_bytes(shard.read_bytes())
    shard = first_shard(folder)
    table = pq.read_table(shard)
    pq.write_table(change(table.replace_schema_metadata(None)), shard)  # as a tool other than `datasets` writes it
    return folder, shard


def strings_for(table, column):
    return table.set_column(
        table.schema.get_field_index(column), column, pa.array([str(v) for v in table[column].to_pylist()])
    )


LABELED_CASES = {
    "no distribution": (lambda table: table.drop_columns(["distribution"]), "no column distribution among"),
    "image as numbers": (
        lambda table: table.set_column(0, "image", pa.array(range(len(table)))),
        r"column image holds Value\('int64'\), not images",
    ),
    "distribution as text": (
        lambda table: strings_for(table, "distribution"),
        "column distribution holds Value\\('string'\\), not a list of numbers per image",
    ),
    "5 of 10 bins": (
        lambda table: table.set_column(
            table.schema.get_field_index("distribution"),
            "distribution",
            pa.array([row[:5] for row in table["distribution"].to_pylist()], pa.list_(pa.float32(), 5)),
        ),
        "5 values in distribution but 10 bins in bin_scores",
    ),
    "mean score as text": (lambda table: strings_for(table, "mean_score"), "column mean_score holds Value"),
}


@pytest.mark.parametrize("case", LABELED_CASES)
def test_a_labeled_shard_with_the_wrong_schema_is_named(prepared, tmp_path, case):
    change, message = LABELED_CASES[case]
    folder, shard = rewrite(prepared, tmp_path, change)
    with pytest.raises(ValueError, match=f"{re.escape(str(shard))}: {message}"):
        load_labeled(folder)


def test_cskd_evaluate_names_a_shard_that_is_not_parquet(prepared, tmp_path, tiny_scorer_dir, capsys):
    folder, shard = rewrite(prepared, tmp_path, lambda table: table)
    shard.write_bytes(b"PAR1 but not really")
    command = ["evaluate", "--model", str(tiny_scorer_dir), "--dataset", str(folder), "--out", str(tmp_path / "ev")]
    assert main(command) == 2
    assert f"{shard}: not a readable Parquet file" in capsys.readouterr().err
    assert not (tmp_path / "ev" / "comparison.md").exists()
