"""`benchmarks/recipe_cost.py` on chosen GPU rates and loader figures (and on the rows `gpu_check.py --smoke`
writes): the bound of each phase, its scaling with GPUs, and every figure labelled measured, derived,
extrapolated or assumed."""

import json

import pytest

from tests.benchmarks.helpers import SHARDS, SIZES, run

BF16 = "bf16 + channels-last"


def gpu_check_report(live: float, cached: float, skd: float) -> dict:
    """A gpu_check.json as `benchmarks/gpu_check.py --json` writes it, with chosen bf16 rates."""
    rows = [
        {"row": f"CFA, live teacher, {BF16}", "images/s": live},
        {"row": f"CFA, cached teacher, {BF16}", "images/s": cached},
        {"row": f"SKD, mu = 15, {BF16}", "images/s": skd},
        {"row": "CFA, live teacher, fp32", "images/s": live / 3},
        {"row": "CFA, cached teacher, fp32", "images/s": cached / 3},
        {"row": "SKD, mu = 15, fp32", "images/s": skd / 3},
        {"row": "input pipeline, 16 workers, 800 px JPEGs", "images/s": 2000.0},
    ]
    return {"device": "Test GPU", "rows": [row | {"step ms": 1.0, "peak GiB": 1.0} for row in rows]}


def loader_report(ms_ava: float, ms_openimages: float, ms_shards: float, ms_shards_stream: float) -> dict:
    """A loader_throughput.json with chosen CPU ms per image (1-core rows, full decoding, draft and shards)."""
    rows = []
    for source, draft, ms, stream in (
        (SIZES[0], False, ms_ava, 0.0),
        (SIZES[0], True, ms_ava / 2, 0.0),
        (SIZES[1], False, ms_openimages, 0.0),
        (SIZES[1], True, ms_openimages / 2, 0.0),
        (SHARDS, None, ms_shards, ms_shards_stream),
    ):
        rows.append({"source": source, "draft": draft, "cores": 1, "cpu ms per image": ms, "ms_stream": stream})
    return {"cpu_count": 2, "rows": rows}


def recipe_cost(tmp_path, gpu_check: dict | None, loader: dict | None, *args: str) -> tuple[dict, str]:
    options = []
    for name, report in (("--gpu-check", gpu_check), ("--loader", loader)):
        if report is not None:
            (tmp_path / name[2:]).write_text(json.dumps(report))
            options += [name, str(tmp_path / name[2:])]
    table = run("recipe_cost.py", *options, "--json", str(tmp_path / "cost.json"), *args)
    report = json.loads((tmp_path / "cost.json").read_text())
    return {phase["phase"]: phase for phase in report["phases"]} | {"gpu rates": report["gpu rates"]}, table


def test_recipe_cost_with_fast_decoding_is_gpu_bound_and_scales_with_gpus(tmp_path):
    # CLIP forward = 1 / (1/300 - 1/1500) = 375 img/s; Swin-Base forward = 1 / (1/600 - 1/1500) = 1000 img/s.
    gpu_check = gpu_check_report(live=300.0, cached=1500.0, skd=600.0)
    phases, table = recipe_cost(tmp_path, gpu_check, loader_report(1.0, 1.0, 1.0, 0.0), "--gpus", "1", "2", "4", "8")
    rates = phases["gpu rates"]
    assert rates["mv2_train"]["provenance"] == "measured" and rates["mv2_train"]["images_per_second"] == 1500.0
    assert rates["clip"]["provenance"] == "derived" and rates["clip"]["images_per_second"] == pytest.approx(375.0)
    assert rates["swin_forward"]["images_per_second"] == pytest.approx(1000.0)
    assert rates["swin_train"]["provenance"] == "extrapolated"
    assert rates["swin_train"]["images_per_second"] == pytest.approx(1000.0 / 3)

    live_mv2 = phases["CFA MobileNetV2 <- CLIP ViT-L/14, live teacher"]
    skd = phases["SKD Swin-Base -> MobileNetV2, mu = 15"]
    assert live_mv2["images/s"] == pytest.approx(300.0) and skd["images/s"] == pytest.approx(600.0)  # as measured
    assert live_mv2["bound by"] == "teacher" and skd["bound by"] == "teacher"
    assert phases["CFA Swin-Base <- CLIP ViT-L/14, live teacher"]["bound by"] == "student"  # 333 < 375 img/s
    assert phases["Fine-tune the Swin-Base teacher on AVA"]["bound by"] == "student"
    assert skd["images"] == 16 * 237_623 * 16 and live_mv2["images"] == 16 * 3_100_000
    for name, phase in phases.items():
        if name == "gpu rates":
            continue
        hours = {int(gpus): value for gpus, value in phase["hours"].items()}
        gpu_hours = {int(gpus): value for gpus, value in phase["gpu hours"].items()}
        assert hours[1] == pytest.approx(phase["images"] / phase["images/s"] / 3600)
        assert hours[2] == pytest.approx(hours[1] / 2) and hours[8] == pytest.approx(hours[1] / 8)
        assert gpu_hours[8] == pytest.approx(gpu_hours[1])  # linear scaling: the same GPU-hours
    assert "ASSUMED" not in table
    assert "| CFA MobileNetV2 <- CLIP ViT-L/14, live teacher | 8,000 X | 375 D | 1,500 M |" in table


@pytest.mark.slow  # runs the benchmark script itself
def test_recipe_cost_reads_the_rows_gpu_check_writes(tmp_path):
    run("gpu_check.py", "--smoke", "--json", str(tmp_path / "smoke.json"))
    report = json.loads((tmp_path / "smoke.json").read_text())
    phases, table = recipe_cost(tmp_path, report, None, "--precision", "fp32")
    rates = phases.pop("gpu rates")
    cached = next(row["images/s"] for row in report["rows"] if row["row"] == "CFA, cached teacher, fp32")
    assert rates["mv2_train"] == {
        "images_per_second": cached,
        "provenance": "measured",
        "basis": "CFA step, cached teacher, fp32, CPU",
    }
    assert rates["clip"]["provenance"] in ("derived", "assumed") and rates["swin_train"]["provenance"] != "measured"
    assert all(phase["hours"]["1"] > 0 for phase in phases.values())
    assert "measured on a CPU (`gpu_check.py --smoke`" in table and "input pipeline, " in table


def test_recipe_cost_names_decode_as_the_bound_when_decoding_is_slow(tmp_path):
    gpu_check = gpu_check_report(live=300.0, cached=1500.0, skd=600.0)
    slow = loader_report(ms_ava=100.0, ms_openimages=100.0, ms_shards=100.0, ms_shards_stream=0.0)
    phases, _ = recipe_cost(tmp_path, gpu_check, slow, "--cores-per-gpu", "4")
    for name, phase in phases.items():
        if name != "gpu rates":
            assert phase["bound by"] == "decode", name
            assert phase["images/s"] == pytest.approx(40.0)  # 4 cores at 10 img/s each


def test_recipe_cost_counts_the_stream_once_per_worker_with_shards(tmp_path):
    # 1.5 ms of decoding and transforming per image, plus 0.5 ms reading the stream in each of the 8 workers.
    shards = loader_report(ms_ava=5.0, ms_openimages=10.0, ms_shards=2.0, ms_shards_stream=0.5)
    phases, _ = recipe_cost(tmp_path, None, shards, "--decoding", "shards")
    decode = phases["CFA MobileNetV2, cached teacher"]["stages"]["decode"]
    assert decode["images_per_second"] == pytest.approx(1e3 * 8 / (1.5 + 8 * 0.5))
    assert decode["provenance"] == "extrapolated"


def test_recipe_cost_without_measurements_labels_every_figure_assumed(tmp_path):
    phases, table = recipe_cost(tmp_path, None, None)
    assert all(rate["provenance"] == "assumed" for rate in phases.pop("gpu rates").values())
    assert all(phase["provenance"] == "assumed" for phase in phases.values())
    assert "GPU rates ASSUMED (no gpu_check.json)" in table and "ASSUMED (no loader_throughput.json)" in table
    assert " M |" not in table and " D |" not in table
