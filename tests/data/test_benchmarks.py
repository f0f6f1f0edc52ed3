import numpy as np
import pytest
from datasets import load_dataset

from cskd_hf.cli import main
from cskd_hf.data.aadb import AADB_BIN_SCORES, load_aadb
from cskd_hf.data.ava import load_ava
from cskd_hf.data.labeled import bin_scores_of, scalar_to_distribution
from cskd_hf.data.para import PARA_BIN_SCORES, load_para
from tests.data.benchmark_files import (
    AADB_RATINGS,
    AVA_CORRUPT,
    AVA_MISSING,
    AVA_ROWS,
    AVA_TEST_IDS,
    PARA_GIAA,
    para_mean,
    write_aadb,
    write_ava,
    write_para,
)


@pytest.fixture(scope="module")
def ava_root(tmp_path_factory):
    return write_ava(tmp_path_factory.mktemp("AVA"))


def test_ava_official_split_fields_and_dropped_images(ava_root, tmp_path):
    report = tmp_path / "dropped.tsv"
    ava = load_ava(ava_root, dropped_report=report)
    assert set(ava) == {"train", "test"}
    assert sorted(ava["test"]["image_id"]) == sorted(set(AVA_TEST_IDS) - {AVA_CORRUPT})
    assert len(ava["train"]) == 4  # 8 rows, 2 in the test list, 1 missing, 1 corrupt

    row = ava["train"][0]
    assert row["image_id"] == "953619"
    # Example row: votes 0 1 5 17 38 36 15 6 5 1 for scores 1..10, 124 votes, sum(score * votes) = 699.
    assert row["num_votes"] == 124
    assert row["mean_score"] == pytest.approx(699 / 124)
    np.testing.assert_allclose(row["distribution"], np.array([0, 1, 5, 17, 38, 36, 15, 6, 5, 1]) / 124, rtol=1e-6)
    assert row["bin_scores"] == list(range(1, 11)) and row["split"] == "train"
    assert row["image"].size == (96, 72)  # decoded lazily into a PIL image

    dropped = report.read_text().splitlines()
    assert dropped[0] == "path\treason" and len(dropped) == 3
    reasons = dict(line.split("\t") for line in dropped[1:])
    assert any(AVA_MISSING in path and "no such file" in reason for path, reason in reasons.items())
    assert any(AVA_CORRUPT in path and "truncated" in reason for path, reason in reasons.items())


def test_ava_paper_split_is_seeded_and_validation_is_carved_from_train(ava_root):
    first = load_ava(ava_root, split="paper", seed=3, validation_size=1)
    again = load_ava(ava_root, split="paper", seed=3, validation_size=1)
    assert first["test"]["image_id"] == again["test"]["image_id"]
    assert len(first["train"]) + len(first["validation"]) + len(first["test"]) == 6
    assert len(first["validation"]) == 1 and len(first["test"]) == 1  # 6 * 237,623 / 242,538 rounds to 6: one kept
    ids = [*first["train"]["image_id"], *first["validation"]["image_id"], *first["test"]["image_id"]]
    assert len(set(ids)) == 6


def test_ava_split_from_an_id_file_and_bad_rows(ava_root, tmp_path):
    ids = tmp_path / "mine.txt"
    ids.write_text("953619\n954113\n")
    assert sorted(load_ava(ava_root, split="ids", test_ids_file=ids, verify="exists")["test"]["image_id"]) == [
        "953619",
        "954113",
    ]
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "AVA.txt").write_text(AVA_ROWS[0] + "\n2 953958 1 2 x 4\n")
    with pytest.raises(ValueError, match=r"AVA.txt:2"):
        load_ava(broken, verify="none")


def test_scalar_to_distribution_keeps_the_mean_exactly():
    scores = np.array([0.0, 0.05, 0.4, 0.6, 1.0])
    spread = scalar_to_distribution(scores, AADB_BIN_SCORES, std=0.2)
    np.testing.assert_allclose(spread.sum(1), 1.0)
    np.testing.assert_allclose(spread @ AADB_BIN_SCORES, scores, atol=1e-9)
    assert spread[2].argmax() == 2 and spread[3].argmax() == 2  # 0.4 and 0.6 peak on the 0.5 bin
    with pytest.raises(ValueError, match="within the bins"):
        scalar_to_distribution(np.array([1.2]), AADB_BIN_SCORES, std=0.2)


def test_aadb_scalar_scores_with_the_gaussian_rule(tmp_path):
    aadb = load_aadb(write_aadb(tmp_path / "AADB"))
    assert {split: len(d) for split, d in aadb.items()} == {"train": 3, "validation": 1, "test": 1}  # 1 missing
    row = aadb["train"][0]
    assert row["image_id"] == "farm1_a" and row["mean_score"] == pytest.approx(0.6)
    assert np.dot(row["distribution"], AADB_BIN_SCORES) == pytest.approx(0.6, abs=1e-6)
    assert row["num_votes"] == -1 and row["bin_scores"] == AADB_BIN_SCORES


def test_aadb_raw_ratings_give_histograms(tmp_path):
    aadb = load_aadb(write_aadb(tmp_path / "AADB", with_ratings=True))
    by_id = {row["image_id"]: row for row in aadb["train"]}
    np.testing.assert_allclose(by_id["farm1_a"]["distribution"], [0, 0, 0.6, 0.4, 0])  # ratings 3 4 3 4 3
    assert by_id["farm1_a"]["num_votes"] == len(AADB_RATINGS["farm1_a.jpg"])
    np.testing.assert_allclose(by_id["farm1_b"]["distribution"], [0.8, 0.2, 0, 0, 0])
    assert by_id["farm1_b"]["mean_score"] == pytest.approx(0.05)  # the released scalar stays the target mean
    assert by_id["farm1_c"]["num_votes"] == -1  # no raw ratings for it: the Gaussian rule


def test_paper_splits_train_on_the_papers_counts():
    """CSKD §4.1: "237,623, 8345 and 28220 samples are randomly selected for training"."""
    from cskd_hf.data.labeled import paper_train_count

    assert paper_train_count(255_500, 237_623, 242_538) == 237_623  # all of AVA: the paper's count, the rest test
    assert paper_train_count(9_958, 8_345, 10_000) == 8_310  # AADB's released lists hold 42 images fewer than 10,000
    assert paper_train_count(6, 237_623, 242_538) == 5  # a small folder: the paper's share, one test image kept


def test_aadb_paper_split_pools_the_lists_and_is_seeded(tmp_path):
    root = write_aadb(tmp_path / "AADB")
    official = load_aadb(root, verify="exists")
    paper = load_aadb(root, verify="exists", split="paper", seed=1)
    again = load_aadb(root, verify="exists", split="paper", seed=1)
    ids = lambda dataset_dict: sorted(i for split in dataset_dict.values() for i in split["image_id"])  # noqa: E731
    assert ids(paper) == ids(official)  # the same images, split anew
    assert set(paper) == {"train", "test"} and (len(paper["train"]), len(paper["test"])) == (4, 1)  # 5 on disk
    assert paper["test"]["image_id"] == again["test"]["image_id"]
    with_validation = load_aadb(root, verify="exists", split="paper", seed=1, validation_size=1)
    assert len(with_validation["validation"]) == 1 and len(with_validation["train"]) == 3
    with pytest.raises(ValueError, match="split must be 'official' or 'paper'"):
        load_aadb(root, split="random")


def test_aadb_released_scores_are_checked_against_the_raw_ratings(tmp_path, caplog):
    """The (rating - 1) / 4 mapping is an assumption: with the raw ratings at hand, disagreements are named."""
    import logging

    root = write_aadb(tmp_path / "AADB", with_ratings=True)
    with caplog.at_level(logging.WARNING, logger="cskd_hf"):
        load_aadb(root, verify="none")
    assert "differ from their AADB_AllinAll.csv" not in caplog.text  # the fixture's scores are the ratings' means
    train_list = root / "imgListFiles_label" / "imgListTrainRegression_score.txt"
    train_list.write_text(train_list.read_text().replace("farm1_a.jpg 0.6", "farm1_a.jpg 0.7"))
    with caplog.at_level(logging.WARNING, logger="cskd_hf"):
        load_aadb(root, verify="none")
    assert f"{train_list}: 1 of 3 released scores differ" in caplog.text
    assert "farm1_a.jpg (0.7 vs 0.6)" in caplog.text


@pytest.mark.parametrize("per_user", [False, True])
def test_para_giaa_and_per_user_files_agree(tmp_path, per_user):
    para = load_para(write_para(tmp_path / "PARA"), per_user=per_user)
    assert {split: len(d) for split, d in para.items()} == {"train": 3, "test": 2}
    for file_name, split in (("PARA-GiaaTrain.csv", "train"), ("PARA-GiaaTest.csv", "test")):
        rows = {row["image_id"]: row for row in para[split]}
        for name, session, votes in PARA_GIAA[file_name]:
            row = rows[f"{session}/{name}"]
            np.testing.assert_allclose(row["distribution"], np.array(votes) / sum(votes), rtol=1e-6)
            assert row["mean_score"] == pytest.approx(para_mean(votes), abs=1e-4)
            assert row["num_votes"] == sum(votes)
    assert bin_scores_of(para) == PARA_BIN_SCORES


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
