"""`cskd_hf.data.ava`: AVA's official, paper and id-file splits with their dropped images, and hostile `AVA.txt`
files: any well-formed one parses exactly; any corrupted row is named by file and line."""

import logging

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cskd_hf.data.ava import load_ava, read_ava_txt
from tests.data.benchmark_files import AVA_CORRUPT, AVA_MISSING, AVA_ROWS, AVA_TEST_IDS


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


VOTES = st.lists(st.integers(0, 400), min_size=10, max_size=10)
ROWS = st.lists(VOTES, min_size=1, max_size=25)


def is_integer(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


# One field of a row: no white space inside (which would change the column count) and not a whole number.
NOT_A_COUNT = st.text(st.characters(blacklist_categories=("Zs", "Zl", "Zp", "Cc", "Cs")), min_size=1, max_size=8)
NOT_A_COUNT = NOT_A_COUNT.filter(lambda text: len(text.split()) == 1 and not is_integer(text))


def ava_line(index: int, image_id: str, votes: list) -> str:
    return f"{index} {image_id} {' '.join(map(str, votes))} 0 0 1"


def write_ava_txt(folder, lines: list[str]):
    path = folder / "AVA.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@settings(max_examples=60, deadline=None)
@given(rows=ROWS)
def test_any_well_formed_file_parses_exactly(rows, tmp_path_factory):
    path = write_ava_txt(tmp_path_factory.mktemp("ava"), [ava_line(i, f"{1000 + i}", v) for i, v in enumerate(rows)])
    images = read_ava_txt(path, "images")
    voted = [(i, votes) for i, votes in enumerate(rows) if sum(votes)]
    assert [image.image_id for image in images] == [f"{1000 + i}" for i, _ in voted]
    for image, (_, votes) in zip(images, voted, strict=True):
        assert image.num_votes == sum(votes) and image.votes.tolist() == votes
        assert image.mean_score == pytest.approx(sum(score * n for score, n in enumerate(votes, 1)) / sum(votes))
        assert 1 <= image.mean_score <= 10


@settings(max_examples=120, deadline=None)
@given(rows=ROWS, corruption=st.sampled_from(["short", "not a count", "negative", "duplicate id"]), data=st.data())
def test_any_corrupted_row_is_named_by_file_and_line(rows, corruption, data, tmp_path_factory):
    lines = [ava_line(i, f"{1000 + i}", votes) for i, votes in enumerate(rows)]
    bad = data.draw(st.integers(0, len(lines) - 1), label="corrupted row")
    fields = lines[bad].split()
    if corruption == "short":
        fields = fields[: data.draw(st.integers(1, 11))]
    elif corruption == "not a count":
        fields[data.draw(st.integers(2, 11))] = data.draw(NOT_A_COUNT)
    elif corruption == "negative":
        fields[data.draw(st.integers(2, 11))] = str(-data.draw(st.integers(1, 10**6)))
    else:  # a later row repeats the id of row `bad`
        lines.append(ava_line(len(lines), fields[1], rows[bad]))
        bad = len(lines) - 1
    if corruption != "duplicate id":
        lines[bad] = " ".join(fields)
    path = write_ava_txt(tmp_path_factory.mktemp("ava"), lines)
    expected = {
        "short": "columns",
        "not a count": "integers",
        "negative": "negative",
        "duplicate id": "already listed",
    }
    with pytest.raises(ValueError, match=rf"AVA\.txt:{bad + 1}: .*{expected[corruption]}"):
        read_ava_txt(path, "images")


def test_rows_without_votes_are_left_out_with_a_warning(tmp_path, caplog):
    path = write_ava_txt(
        tmp_path, [ava_line(0, "1", [0] * 10), ava_line(1, "2", [1] * 10), ava_line(2, "3", [0] * 10)]
    )
    with caplog.at_level(logging.WARNING, logger="cskd_hf"):
        assert [image.image_id for image in read_ava_txt(path, "images")] == ["2"]
    assert "2 rows without a vote left out (lines 1, 3)" in caplog.text


def test_a_file_that_is_not_text_is_named(tmp_path):
    path = tmp_path / "AVA.txt"
    path.write_bytes(b"1 953619 0 1 5 17 38 36 15 6 5 1 1 22 1396\n\xff\xfe\x00binary")
    with pytest.raises(ValueError, match=r"AVA\.txt: not UTF-8 text"):
        read_ava_txt(path, "images")
