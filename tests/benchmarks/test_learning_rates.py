"""`benchmarks/learning_rates.py`, the fair-tuning grid of #26: every fine-tuned row at every rate, chosen on the
validation split, the variants at their row's rate, later runs from the chosen models."""

import importlib.util
import json
import math

import pytest
from safetensors.torch import load_file

from cskd_hf.synthetic.quickstart import VARIANT_OF, tuned_rows
from tests.benchmarks.helpers import REPO, run

spec = importlib.util.spec_from_file_location("benchmarks_learning_rates", REPO / "benchmarks" / "learning_rates.py")
learning_rates = importlib.util.module_from_spec(spec)
spec.loader.exec_module(learning_rates)


def test_the_best_validation_srcc_chooses_and_a_diverged_run_never_wins():
    assert learning_rates.best_learning_rate({1e-4: 0.61, 3e-4: 0.65, 1e-3: 0.64}) == 3e-4
    assert learning_rates.best_learning_rate({1e-4: 0.61, 1e-3: math.nan}) == 1e-4


def test_the_table_marks_each_rows_choice_and_prints_what_to_record():
    result = {
        "rows": {"nima-teacher": {1e-4: 0.70, 1e-3: 0.72}, "clip-finetuned": {1e-4: 0.75, 1e-3: 0.60}},
        "chosen": {"nima-teacher": 1e-3, "clip-finetuned": 1e-4},
    }
    table = learning_rates.grid_table(result)
    assert "| nima-teacher | 0.700 | **0.720** | 0.001 |" in table
    assert "| clip-finetuned | **0.750** | 0.600 | 0.0001 |" in table
    assert 'row_learning_rates={"nima-teacher": 0.001, "clip-finetuned": 0.0001}' in table


def test_variants_take_their_rows_rate_and_have_none_of_their_own():
    assert set(VARIANT_OF.values()) <= set(tuned_rows()) and not set(VARIANT_OF) & set(tuned_rows())


@pytest.mark.slow  # about 6 minutes: the smoke plan's world and every fine-tuned row at two rates
def test_the_smoke_plans_grid_chooses_on_validation_and_distils_the_chosen_teacher(tmp_path):
    out = tmp_path / "out"
    run("learning_rates.py", "--plan", "smoke", "--learning-rates", "1e-4", "1e-3", "--out", str(out),
        "--json", str(tmp_path / "grid.json"))  # fmt: skip
    result = json.loads((tmp_path / "grid.json").read_text())
    assert set(result["rows"]) == set(tuned_rows())  # every fine-tuned row, `--full`'s baselines too
    for folder, tried in result["rows"].items():
        assert set(tried) == {"0.0001", "0.001"}, folder
        assert result["chosen"][folder] == float(max(tried, key=tried.get)), folder
    # KD and SKD started from the chosen CFA teacher: the folder they read holds the chosen run's weights
    chosen = f"cfa-teacher-scorer-lr{result['chosen']['cfa-teacher-scorer']:g}"
    teacher, picked = (
        load_file(out / "models" / name / "model.safetensors") for name in ("cfa-teacher-scorer", chosen)
    )
    assert teacher.keys() == picked.keys() and all((teacher[k] == picked[k]).all() for k in teacher)
