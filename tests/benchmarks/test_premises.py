"""`benchmarks/premises.py`, the calibration tool of #26: the premise rows alone, the fine-tuned ones read at the
learning rate their validation SRCC chooses."""

import importlib.util
import json

import pytest

from tests.benchmarks.helpers import REPO, run

spec = importlib.util.spec_from_file_location("benchmarks_premises", REPO / "benchmarks" / "premises.py")
premises = importlib.util.module_from_spec(spec)
spec.loader.exec_module(premises)


def seed_result(clip_probe: float, content_probe: float, nima: float, clip_finetuned: float) -> dict:
    def row(test: float, learning_rate: float | None = None) -> dict:  # the table reads test, never validation
        return {"validation": test - 0.05, "test": test, "learning_rate": learning_rate}

    return {
        "rows": {
            "CLIP linear probe": row(clip_probe),
            "Content-pretrained linear probe": row(content_probe),
            "NIMA* teacher": row(nima, 3e-4),
            "CLIP fine-tuned": row(clip_finetuned, 1e-4),
        },
        "splits": {"unlabeled": 10_000, "train": 1_000, "validation": 500, "test": 1_000},
    }


def test_the_table_gives_each_premise_its_mean_difference_and_wins_with_the_margin():
    table = premises.premise_table({0: seed_result(0.70, 0.72, 0.71, 0.74), 1: seed_result(0.74, 0.72, 0.75, 0.73)})
    assert "| CLIP linear probe | 0.700 | 0.740 | 0.720 |" in table
    assert "| NIMA* teacher | 0.710 (lr 0.0003) | 0.750 (lr 0.0003) | 0.730 |" in table
    # P1 against the content probe: -0.02 and +0.02; against NIMA* within 0.02: -0.01 and -0.01 both pass the margin
    assert "P1: CLIP linear probe > Content-pretrained linear probe: mean difference +0.000, met on 1/2" in table
    assert "P1: CLIP linear probe > NIMA* teacher - 0.02: mean difference -0.010, met on 2/2" in table
    assert "P2: CLIP fine-tuned > CLIP linear probe: mean difference +0.015, met on 1/2" in table
    assert "P3: unlabeled / train = 10000 / 1000 = 10.0x (met)" in table


@pytest.mark.slow  # about 90 s: the smoke plan's world, stand-ins and premise rows
def test_the_smoke_plans_premise_rows_choose_their_learning_rate_on_validation(tmp_path):
    out = run("premises.py", "--plan", "smoke", "--seeds", "0", "--learning-rates", "1e-4", "1e-3",
              "--out", str(tmp_path / "out"), "--json", str(tmp_path / "premises.json"))  # fmt: skip
    rows = json.loads((tmp_path / "premises.json").read_text())["0"]["rows"]
    for name in ("NIMA* teacher", "CLIP fine-tuned"):
        tried = rows[name]["tried"]
        assert set(tried) == {"0.0001", "0.001"}
        best = max(tried, key=lambda lr: tried[lr]["validation"])
        assert rows[name]["learning_rate"] == float(best) and rows[name]["test"] == tried[best]["test"]
    assert all(-1 <= row["test"] <= 1 for row in rows.values())
    assert "P3: unlabeled / train = 1500 / 400 = 3.8x (not met)" in out
