"""Hostile label files: any well-formed `AVA.txt` parses exactly; any corrupted row is named by file and line."""

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cskd_hf.data.ava import read_ava_txt

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
