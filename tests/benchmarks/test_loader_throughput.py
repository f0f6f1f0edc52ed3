"""`benchmarks/loader_throughput.py --quick` run as a user runs it: every source, draft setting and core count
measured, and its figures follow from its inputs."""

import json
import math

import pytest

from tests.benchmarks.helpers import SHARDS, SIZES, run


@pytest.mark.slow  # runs the benchmark script itself
def test_loader_throughput_quick_measures_every_source_draft_setting_and_core_count(tmp_path):
    out = tmp_path / "loader.json"
    table = run("loader_throughput.py", "--quick", "--json", str(out))
    report = json.loads(out.read_text())
    rows = {(row["source"], row["draft"], row["cores"]): row for row in report["rows"]}
    expected = {(size, draft, cores) for size in SIZES for draft in (False, True) for cores in (1, 2)}
    assert set(rows) == expected | {(SHARDS, None, 1), (SHARDS, None, 2)}
    for row in rows.values():
        assert row["images"] > 0 and row["images/s"] > 0 and row["cpu ms per image"] > 0
        assert math.isclose(row["images/s per core"], row["images/s"] / row["cores"])
        assert math.isclose(row["ms per image per core"], 1e3 / row["images/s per core"])
        assert min(row["ms_stream"], row["ms_decode"], row["ms_transform"]) > 0
        assert row["bound by"] in ("stream", "decode", "transform", "other")
        assert row["jpeg_bits_per_pixel"] > 0
    # A 4000 px JPEG decodes at 1/8 of its size in draft mode: several times less work, and decoding bounds it.
    camera = SIZES[2]
    assert rows[camera, True, 1]["ms_decode"] < rows[camera, False, 1]["ms_decode"] / 2
    assert rows[camera, False, 1]["bound by"] == "decode"
    assert rows[camera, False, 1]["megapixels"] > 9 and rows[SHARDS, None, 1]["megapixels"] == 256 * 256 / 1e6
    assert {(ratio["cores"], ratio["ava_draft"]) for ratio in report["ratios"]} == {
        (1, False),
        (1, True),
        (2, False),
        (2, True),
    }
    assert f"| {SHARDS} | – | 1 |" in table and "shards / AVA-size photos (full decoding)" in table
