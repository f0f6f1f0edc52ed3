"""`cskd_hf.data.aadb`: AADB's scalar scores and raw ratings, its paper split, the check of the released scores
against the ratings, and the bad line of a label file named (with PARA's readers, in one parametrized test)."""

import numpy as np
import pytest

from cskd_hf.data.aadb import AADB_BIN_SCORES, load_aadb
from tests.data.benchmark_files import AADB_RATINGS, write_aadb


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


LEVELS = [f"aestheticScore_{1 + 0.5 * i:.1f}" for i in range(9)]
PARA_HEADER = ",".join(["imageName", "sessionId", *LEVELS])


@pytest.mark.parametrize(
    ("reader", "content", "message"),
    [
        ("aadb_scores", "a.jpg 0.5\nb.jpg 1.5\n", r"scores\.txt:2: score 1\.5 is outside \[0, 1\]"),
        ("aadb_scores", "a.jpg 0.5\nb.jpg\n", r"scores\.txt:2: expected '<file> <score>'"),
        ("aadb_scores", "a.jpg 0.5\nb.jpg nan\n", r"scores\.txt:2: score nan is outside"),
        ("aadb_scores", "a.jpg 0.5\nb.jpg 0.2\na.jpg 0.7\n", r"scores\.txt:3: a\.jpg already listed on line 1"),
        ("aadb_ratings", "ImageFile,Answer.overallScore\na.jpg,4\nb.jpg,x\n", r"ratings\.csv:3: .*not a rating"),
        ("aadb_ratings", "ImageFile,Answer.overallScore\na.jpg,9\n", r"ratings\.csv:2: rating 9 .* is not 1\.\.5"),
        ("aadb_ratings", "ImageFile,Answer.overallScore\na.jpg,inf\n", r"ratings\.csv:2: .*not a rating"),
        ("aadb_ratings", "ImageFile,Score\na.jpg,4\n", r"ratings\.csv: needs .*Answer\.overallScore"),
        ("para_giaa", "imageName,sessionId\na.jpg,s1\n", r"giaa\.csv: missing columns aestheticScore_1\.0"),
        ("para_giaa", f"{PARA_HEADER}\na.jpg,s1,{','.join(['1'] * 8)},x\n", r"giaa\.csv:2: .*must be numbers"),
        ("para_giaa", f"{PARA_HEADER}\na.jpg,s1,{','.join(['1'] * 8)},-3\n", r"giaa\.csv:2: .*finite and >= 0"),
        (
            "para_giaa",
            f"{PARA_HEADER}\na.jpg,s1,{','.join(['0'] * 9)}\n",
            r"giaa\.csv:2: the score distribution is empty",
        ),
        (
            "para_giaa",
            f"{PARA_HEADER}\na.jpg,s1,{','.join(['1'] * 9)}\na.jpg,s1,{','.join(['2'] * 9)}\n",
            r"giaa\.csv:3: s1/a\.jpg already listed on line 2",
        ),
        (
            "para_per_user",
            "imageName,sessionId,aestheticScore\na.jpg,s1,3.5\nb.jpg,s1,3.2\n",
            r"user\.csv:3: .*by 0\.5",
        ),
    ],
)
def test_aadb_and_para_files_name_the_bad_line(tmp_path, reader, content, message):
    from cskd_hf.data import aadb, para

    read, name = {
        "aadb_scores": (aadb.read_score_file, "scores.txt"),
        "aadb_ratings": (aadb.read_rating_histograms, "ratings.csv"),
        "para_giaa": (lambda path: para.read_giaa_file(path, "images"), "giaa.csv"),
        "para_per_user": (lambda path: para.read_per_user_file(path, "images"), "user.csv"),
    }[reader]
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        read(path)
