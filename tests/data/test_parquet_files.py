"""Parquet with the wrong schema, at the labeled (`--dataset`, `cskd evaluate`) and unlabeled (`--unlabeled`) entry
points: an error naming the file and the column before anything is read or trained."""

import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cskd_hf.cli import main
from cskd_hf.data.prepare import load_labeled
from cskd_hf.data.unlabeled import load_unlabeled
from cskd_hf.training import cfa
from tests.helpers import write_tiny_clip
from tests.training.helpers import QUICK
from tests.training.toy import write_toy_labeled, write_toy_unlabeled

IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


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


def write_unlabeled_parquet(path, columns: dict):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


def test_unlabeled_parquet_without_images_is_named_before_streaming(tmp_path):
    photo = (write_toy_unlabeled(tmp_path / "photos", count=1, image_size=16) / "0000.png").read_bytes()
    shards = tmp_path / "shards"
    write_unlabeled_parquet(shards / "a.parquet", {"image": pa.array([{"bytes": photo, "path": None}], IMAGE)})
    assert next(iter(load_unlabeled([f"parquet:{shards}/*.parquet"])))["image"]["bytes"] == photo

    bad = write_unlabeled_parquet(shards / "b.parquet", {"caption": ["a photo"]})
    with pytest.raises(ValueError, match=rf"{re.escape(str(bad))}: no image column among \['caption'\]"):
        load_unlabeled([f"parquet:{shards}/*.parquet"])
    write_unlabeled_parquet(bad, {"image": [7]})
    with pytest.raises(ValueError, match=rf"{re.escape(str(bad))}: column image holds Value\('int64'\), not encoded"):
        load_unlabeled([f"{shards}/*.parquet"])
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match=f"{re.escape(str(bad))}: not a readable Parquet file"):
        load_unlabeled([f"{shards}/*.parquet"])


def test_cfa_refuses_an_unlabeled_parquet_without_images_before_training(tmp_path, caplog):
    bad = write_unlabeled_parquet(tmp_path / "corpus" / "part-0.parquet", {"url": ["https://example.com/a.jpg"]})
    args = ["--teacher", str(write_tiny_clip(tmp_path / "clip")), "--unlabeled", str(bad)]
    args += ["--output_dir", str(tmp_path / "out"), "--num_workers", "0", *QUICK]
    with pytest.raises(ValueError, match=rf"{re.escape(str(bad))}: no image column among \['url'\]"):
        cfa.train(cfa.parse_arguments(cfa.CFAArguments, args))
    assert not (tmp_path / "out" / "checkpoints").exists()
