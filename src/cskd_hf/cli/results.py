"""Result files of `cskd score` and `cskd zeroshot`: CSV or JSON Lines, written row by row as the scores arrive."""

import contextlib
import csv
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # for annotations only: zero_shot loads torch
    from ..baselines.zero_shot import ScoreMap
    from ..runtime.scoring import ScoreResult

OUTPUT_FORMATS = ("csv", "jsonl")


def output_format(path: str | os.PathLike | None, requested: str | None = None) -> str:
    """The output format: as requested, else from the file extension (`.jsonl`/`.json` or `.csv`), else CSV."""
    if requested:
        if requested not in OUTPUT_FORMATS:
            raise ValueError(f"unknown output format {requested!r}; choose from {', '.join(OUTPUT_FORMATS)}")
        return requested
    suffix = Path(path).suffix.lower() if path else ""
    return "jsonl" if suffix in (".jsonl", ".json", ".ndjson") else "csv"


@contextlib.contextmanager
def open_output(path: str | os.PathLike | None) -> Iterator[TextIO]:
    """`path` opened for writing (UTF-8, newlines as the csv module wants), or stdout when None."""
    if path is None:
        yield sys.stdout
        return
    with open(path, "w", newline="", encoding="utf-8") as stream:
        yield stream


def write_results(
    results: Iterable["ScoreResult"], stream: TextIO, fmt: str, bin_labels: Sequence[str]
) -> Iterator["ScoreResult"]:
    """Write results to `stream` as they arrive (CSV with one probability column per bin, or JSON Lines).

    Yields each result after writing it, so callers can count them.
    """
    if fmt == "csv":
        writer = csv.writer(stream)
        writer.writerow(["path", "score", "std", *[f"p_{label}" for label in bin_labels], "error"])
        for result in results:
            probabilities = result.distribution or [None] * len(bin_labels)
            writer.writerow(
                [
                    result.path,
                    format_value(result.score),
                    format_value(result.std),
                    *map(format_value, probabilities),
                    result.error or "",
                ]
            )
            yield result
    else:
        for result in results:
            stream.write(json.dumps(asdict(result)) + "\n")
            yield result


def write_zero_shot_results(
    results: Iterable["ScoreResult"], stream: TextIO, score_map: "ScoreMap | None"
) -> Iterator["ScoreResult"]:
    """Write zero-shot results to `stream` as CSV rows (`path, zero_shot[, score], error`) as they arrive, `score`
    being the zero-shot score on a dataset's scale when a `score_map` is given; yields each result after writing it.
    """
    writer = csv.writer(stream)
    writer.writerow(["path", "zero_shot", *(["score"] if score_map else []), "error"])
    for result in results:
        mapped = [] if score_map is None else [format_value(None if result.score is None else score_map(result.score))]
        writer.writerow([result.path, format_value(result.score), *mapped, result.error or ""])
        yield result


def format_value(value: float | None) -> str:
    """A number as written to CSV output: 6 significant digits, empty for a file that could not be scored."""
    return "" if value is None else f"{value:.6g}"


def count_results(results: Iterable["ScoreResult"]) -> tuple[int, int]:
    """Consume `results`, printing each unreadable file's error to stderr: (number scored, number unreadable)."""
    scored = failed = 0
    for result in results:
        if result.error:
            failed += 1
            print(f"error: {result.error}", file=sys.stderr)
        else:
            scored += 1
    return scored, failed


__all__ = [
    "OUTPUT_FORMATS",
    "count_results",
    "format_value",
    "open_output",
    "output_format",
    "write_results",
    "write_zero_shot_results",
]
