"""The multi-seed report of the quickstart (`benchmarks/seeds.py`) on fake results: its statistics against hand
computations, its n/a and missing-row cases, and its command line without running a quickstart."""

import importlib.util
import json
import math
import re
import shutil
import statistics
import sys
from pathlib import Path

import pytest
from scipy import stats

from tests.benchmarks.helpers import REPO

spec = importlib.util.spec_from_file_location("benchmarks_seeds", REPO / "benchmarks" / "seeds.py")
seeds = importlib.util.module_from_spec(spec)
spec.loader.exec_module(seeds)

T_0975_4 = 2.7764451  # Student's t, 97.5 % quantile, 4 degrees of freedom (printed tables)
# Per row, SRCC over seeds 0-4; PLCC is SRCC - 0.01 and MSE 1 - SRCC, so the PLCC differences equal the SRCC ones.
SRCC = {
    "NIMA* teacher": [0.78, 0.80, 0.80, 0.79, 0.77],
    "NIMA* student": [0.70, 0.71, 0.72, 0.73, 0.75],
    "CFA teacher": [0.80, 0.81, 0.79, 0.82, 0.80],
    "CFA student": [0.75, 0.75, 0.75, 0.75, 0.75],
    "KD student": [0.76, 0.76, 0.76, 0.76, 0.76],
    "CSKD student (SKD)": [0.77, 0.77, 0.75, 0.78, 0.77],
    "CLIP fine-tuned": [0.70, 0.70, 0.70, 0.70, 0.70],
    "untrained student": [0.10, 0.20, 0.30, 0.00, 0.05],
}


def fake_results(seed: int, rows: dict[str, list[float]] = SRCC, smoke: bool = False, full: bool = False) -> dict:
    results = {
        name: {"n": 100, "srcc": values[seed], "plcc": values[seed] - 0.01, "mse": 1 - values[seed], "accuracy": 0.8}
        for name, values in rows.items()
    }
    return {"seed": seed, "smoke": smoke, "full": full, "plan": {"mu": 2, "student_epochs": 4}, "results": results}


def claim(claims: list[dict], a: str, b: str, metric: str) -> dict:
    return next(c for c in claims if (c["a"], c["b"], c["metric"]) == (a, b, metric))


def test_mean_std_is_the_sample_standard_deviation():
    values = SRCC["untrained student"]
    summary = seeds.mean_std(values)
    assert summary["n"] == 5
    assert summary["mean"] == pytest.approx(statistics.mean(values))
    assert summary["std"] == pytest.approx(statistics.stdev(values))
    assert seeds.mean_std([0.5]) == {"mean": 0.5, "std": None, "n": 1}


def test_paired_difference_matches_the_hand_computed_t_interval():
    difference = seeds.paired_difference(SRCC["CFA teacher"], SRCC["NIMA* teacher"])
    differences = [0.02, 0.01, -0.01, 0.03, 0.03]
    assert difference["differences"] == pytest.approx(differences)
    mean = sum(differences) / 5  # 0.016
    sd = math.sqrt(sum((d - mean) ** 2 for d in differences) / 4)  # sqrt(0.00112 / 4)
    half = T_0975_4 * sd / math.sqrt(5)
    assert difference["mean"] == pytest.approx(0.016)
    assert difference["std"] == pytest.approx(sd)
    assert difference["low"] == pytest.approx(mean - half, abs=1e-7)
    assert difference["high"] == pytest.approx(mean + half, abs=1e-7)
    assert difference["wins"] == 4 and difference["n"] == 5
    assert seeds.verdict(difference) == "undecided"  # the interval, about ±0.021, contains 0


def test_the_one_sided_paired_t_test_and_holms_adjustment():
    a, b = SRCC["CFA teacher"], SRCC["NIMA* teacher"]
    differences = [x - y for x, y in zip(a, b)]
    expected = stats.ttest_rel(a, b, alternative="greater").pvalue  # scipy's paired test, as a reference
    assert seeds.one_sided_p(differences) == pytest.approx(expected)
    assert seeds.one_sided_p(differences, "less") == pytest.approx(1 - expected)
    assert seeds.one_sided_p([0.1]) is None and seeds.one_sided_p([0.1, 0.1]) == 0.0
    # Holm by hand: sorted 0.01, 0.02, 0.04 of m = 3 -> 0.03, max(0.03, 0.04), max(0.04, 0.04); untested stays None.
    assert seeds.holm([0.04, None, 0.01, 0.02]) == pytest.approx([0.04, None, 0.03, 0.04])
    assert seeds.holm([0.5, 0.9]) == [1.0, 1.0]
    # A claim the adjustment undoes: one-sided p below 0.05 alone, above it among three claims of its metric.
    claims = [
        {"a": "A", "b": "B", "metric": "srcc", "differences": [0.02, 0.01, 0.015, 0.001, 0.012]},
        {"a": "C", "b": "D", "metric": "srcc", "differences": [0.01, -0.02, 0.0, 0.01, -0.01]},
        {"a": "E", "b": "F", "metric": "srcc", "differences": [-0.03, -0.02, -0.025, -0.03, -0.028]},
    ]
    judged = seeds.holm_verdicts(claims)
    assert [claim["verdict"] for claim in judged] == ["holds", "undecided", "reversed"]
    assert judged[0]["p_holm"] == pytest.approx(min(1.0, 3 * judged[0]["p"]))


def test_paired_difference_counts_only_strict_wins_and_refuses_unpaired_lists():
    assert seeds.paired_difference([1.0, 2.0, 3.0], [1.0, 1.0, 4.0])["wins"] == 1
    with pytest.raises(ValueError):
        seeds.paired_difference([1.0, 2.0], [1.0])


def test_report_over_five_seeds():
    summaries = [fake_results(seed) for seed in range(5)]
    rows = seeds.row_statistics(summaries)
    assert list(rows) == list(SRCC)
    for name, values in SRCC.items():
        assert rows[name]["srcc"]["mean"] == pytest.approx(statistics.mean(values))
        assert rows[name]["srcc"]["std"] == pytest.approx(statistics.stdev(values))
        assert rows[name]["plcc"]["mean"] == pytest.approx(statistics.mean(values) - 0.01)
        assert rows[name]["mse"]["std"] == pytest.approx(statistics.stdev(values))
    claims = seeds.claim_statistics(summaries)
    assert len(claims) == 2 * len(seeds.CLAIMS)
    for metric in ("srcc", "plcc"):
        assert claim(claims, "CFA teacher", "NIMA* teacher", metric)["wins"] == 4
        assert claim(claims, "CFA student", "NIMA* student", metric)["wins"] == 4  # a tie on seed 4 is no win
        assert claim(claims, "CSKD student (SKD)", "KD student", metric)["wins"] == 4
        assert claim(claims, "CSKD student (SKD)", "CFA student", metric)["wins"] == 4
        cfa_vs_clip = claim(claims, "CFA teacher", "CLIP fine-tuned", metric)
        assert cfa_vs_clip["wins"] == 5 and seeds.verdict(cfa_vs_clip) == "holds"
    report = seeds.report_markdown(summaries)
    assert "5 seeds (0, 1, 2, 3, 4), default plan" in report
    mean, std = statistics.mean(SRCC["CFA teacher"]), statistics.stdev(SRCC["CFA teacher"])
    assert f"| CFA teacher | 5 | {mean:.4f} ± {std:.4f} |" in report
    assert "| CFA teacher > NIMA* teacher | SRCC | +0.0200, +0.0100, -0.0100, +0.0300, +0.0300 | +0.0160 |" in report
    verdicts = {(c["a"], c["b"], c["metric"]): c["verdict"] for c in seeds.holm_verdicts(claims)}
    assert verdicts["CFA teacher", "NIMA* teacher", "srcc"] == "undecided"
    assert verdicts["CFA teacher", "CLIP fine-tuned", "srcc"] == "holds"
    assert re.search(
        r"\| CFA teacher > NIMA\* teacher \| SRCC \|[^\n]*\| 4/5 \| [\d.]+ \| [\d.]+ \| undecided \|", report
    )
    assert re.search(
        r"\| CFA teacher > CLIP fine-tuned \| SRCC \|[^\n]*\| 5/5 \| [<\d. ]+ \| [<\d. ]+ \| holds \|", report
    )
    assert "nan" not in report.lower() and "n/a" not in report and "Warning" not in report


def test_one_seed_gives_n_a_not_nan():
    report = seeds.report_markdown([fake_results(2)])
    assert "1 seed (2)" in report and "One seed" in report
    assert f"| CFA teacher | 1 | {SRCC['CFA teacher'][2]:.4f} ± n/a |" in report
    assert "| CFA teacher > NIMA* teacher | SRCC | -0.0100 | -0.0100 | n/a | 0/1 | n/a |" in report
    assert "nan" not in report.lower()
    difference = seeds.paired_difference([0.8], [0.7])
    assert difference["low"] is None and difference["high"] is None and difference["std"] is None


def test_missing_rows_are_reported_not_crashed_on():
    rows = {name: values for name, values in SRCC.items() if name != "CLIP fine-tuned"}
    # A row only some seeds have (a row added later): its claims pair the seeds that have both rows.
    partial = [fake_results(seed, rows) for seed in range(3)] + [fake_results(seed) for seed in (3, 4)]
    claims = seeds.claim_statistics(partial)
    cfa_vs_clip = claim(claims, "CFA teacher", "CLIP fine-tuned", "srcc")
    assert cfa_vs_clip["n"] == 2 and cfa_vs_clip["seeds"] == ["3", "4"]
    assert seeds.row_statistics(partial)["CLIP fine-tuned"]["srcc"]["n"] == 2
    assert "(seeds 3, 4)" in seeds.report_markdown(partial)

    summaries = [fake_results(seed, rows) for seed in range(5)]
    claims = seeds.claim_statistics(summaries)
    assert claim(claims, "CFA teacher", "CLIP fine-tuned", "plcc")["missing"] == ["CLIP fine-tuned"]
    assert claim(claims, "CFA teacher", "NIMA* teacher", "srcc")["wins"] == 4
    report = seeds.report_markdown(summaries)
    assert "| CFA teacher > CLIP fine-tuned | SRCC | missing: CLIP fine-tuned | – | – | – | – |" in report
    assert "| CLIP fine-tuned |" not in report
    json.dumps(seeds.report_json(summaries))  # the --json output holds the missing claim too


def test_mixed_settings_are_flagged():
    report = seeds.report_markdown([fake_results(0), fake_results(1, smoke=True)])
    assert "mixed default and smoke plan" in report
    assert "**Warning: the runs differ in their settings**: smoke (seed 0: False, seed 1: True)." in report
    assert "seed 0 appears more than once" in seeds.report_markdown([fake_results(0), fake_results(0)])


def write_seed_folders(out: Path, seed_numbers) -> None:
    for seed in seed_numbers:
        (out / f"seed-{seed}").mkdir(parents=True)
        (out / f"seed-{seed}" / "results.json").write_text(json.dumps(fake_results(seed)))


def test_report_only_prints_the_table_from_the_seed_folders(tmp_path, capsys, monkeypatch):
    out = tmp_path / "seeds"
    write_seed_folders(out, range(5))
    (out / "seed-9").mkdir()  # no results.json: not a seed yet
    (out / "notes").mkdir()

    def no_runs(*args, **kwargs):
        raise AssertionError("--report-only ran something")

    monkeypatch.setattr(seeds.subprocess, "run", no_runs)
    seeds.main(["--report-only", "--out", str(out), "--json", str(tmp_path / "seeds.json")])
    printed = capsys.readouterr().out
    assert "| row | seeds | SRCC | PLCC | MSE |" in printed
    assert "| claim | metric | per seed | mean | 95% interval | wins | p (one-sided) | Holm p | verdict |" in printed
    assert "| CSKD student (SKD) > KD student | PLCC |" in printed
    assert "No results yet" not in printed
    report = json.loads((tmp_path / "seeds.json").read_text())
    assert report["seeds"] == ["0", "1", "2", "3", "4"]
    assert claim(report["claims"], "CFA teacher", "NIMA* teacher", "srcc")["wins"] == 4


def test_runs_only_the_missing_seeds_each_in_a_fresh_quickstart_process(tmp_path, capsys, monkeypatch):
    out = tmp_path / "seeds"
    write_seed_folders(out, (0, 2))
    commands = []

    def fake_quickstart(command, **kwargs):
        commands.append(command)
        folder = Path(command[command.index("--out") + 1])
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps(fake_results(int(command[command.index("--seed") + 1]))))
        return seeds.subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(seeds.subprocess, "run", fake_quickstart)
    seeds.main(["--seeds", "0", "1", "2", "3", "--out", str(out), "--smoke"])
    prefix = [sys.executable, "-m", "cskd_hf.cli", "quickstart"]
    assert commands == [
        [*prefix, "--seed", "1", "--out", str(out / "seed-1"), "--smoke"],
        [*prefix, "--seed", "3", "--out", str(out / "seed-3"), "--smoke"],
    ]
    printed = capsys.readouterr().out
    assert "seed-0/results.json exists, skipped" in printed and "4 seeds (0, 1, 2, 3)" in printed
    assert "No results yet for seed 4" not in printed  # 4 was not asked for


def test_full_seeds_start_from_a_copy_of_the_finished_default_run(tmp_path, monkeypatch):
    """--reuse-from: the default run's folder is copied, without its report, with a stage record made from its
    results.json (a run of a version without one), and the quickstart keeps those stages (--reuse)."""
    default_run = tmp_path / "default" / "seed-0"
    (default_run / "models" / "cfa-student").mkdir(parents=True)
    (default_run / "models" / "cfa-student" / "model.safetensors").write_bytes(b"weights")
    shutil.copy(REPO / seeds.RECORDS["default"] / "seed-0" / "results.json", default_run / "results.json")
    (default_run / "results.md").write_text("the default run's report")
    (default_run / "cache" / "skd-teacher").mkdir(parents=True)  # its description names the source's paths
    commands = []
    monkeypatch.setattr(seeds.subprocess, "run", lambda command, **kwargs: commands.append(command) or
                        seeds.subprocess.CompletedProcess(command, 0))  # fmt: skip

    out = tmp_path / "full"
    seeds.main(["--seeds", "0", "1", "--out", str(out), "--full", "--reuse-from", str(tmp_path / "default")])
    assert [command[command.index("--seed") + 1] for command in commands] == ["0", "1"]
    assert not (out / "seed-1").exists()  # no default run of seed 1 to start from: the quickstart runs it all
    assert commands[0][-2:] == ["--full", "--reuse"]
    copy = out / "seed-0"
    assert (copy / "models" / "cfa-student" / "model.safetensors").read_bytes() == b"weights"
    assert not (copy / "results.json").exists() and not (copy / "results.md").exists()
    assert not (copy / "cache").exists() and not (out / "seed-0.partial").exists()
    stages = json.loads((copy / "stages.json").read_text())
    recorded = json.loads((default_run / "results.json").read_text())
    assert stages["key"] == {"seed": 0, "plan": recorded["plan"]}
    assert {name: stage["seconds"] for name, stage in stages["finished"].items()} == recorded["stage_seconds"]
    assert all(stage["environment"] == recorded["environment"] for stage in stages["finished"].values())

    # A run of another seed (or plan) is refused before anything is copied.
    shutil.copytree(default_run, tmp_path / "default" / "seed-2")
    with pytest.raises(ValueError, match=r"seed-2/results.json are of another run \(it differs in seed\)"):
        seeds.main(["--seeds", "2", "--out", str(out), "--full", "--reuse-from", str(tmp_path / "default")])
    assert not (out / "seed-2").exists() and not (out / "seed-2.partial").exists()


def test_full_runs_pass_full_to_the_quickstart_and_default_runs_report_no_variants(tmp_path, monkeypatch):
    commands = []

    def fake_quickstart(command, **kwargs):
        commands.append(command)
        folder = Path(command[command.index("--out") + 1])
        folder.mkdir(parents=True)
        summary = fake_results(int(command[command.index("--seed") + 1]), full="--full" in command)
        (folder / "results.json").write_text(json.dumps(summary))
        return seeds.subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(seeds.subprocess, "run", fake_quickstart)
    seeds.main(["--seeds", "0", "--out", str(tmp_path / "full"), "--full"])
    seeds.main(["--seeds", "0", "1", "--out", str(tmp_path / "default")])
    assert commands[0][-1] == "--full" and all(command[-1] != "--full" for command in commands[1:])
    default = seeds.report_markdown(list(seeds.read_results(tmp_path / "default").values()))
    assert "2 seeds (0, 1), default plan" in default
    assert "these runs have neither" in default and "Fig. 3:" not in default
    full = seeds.report_markdown(list(seeds.read_results(tmp_path / "full").values()))
    assert "1 seed (0), full plan" in full and "Fig. 3:" in full
    assert "CSKD student, live teacher > CSKD student (SKD)" in full  # the eq. 5 comparison, missing in this fake
    smoke_full = seeds.report_markdown([fake_results(0, smoke=True, full=True)])
    assert "1 seed (0), smoke, full plan" in smoke_full and "Fig. 3:" in smoke_full


# Per seed, the ViT's layer-averaged attention after CFA minus before (Fig. 3): distance falls on 4 of 5 seeds,
# its variance over heads rises on all, entropy rises on all (unlike the paper).
ATTENTION_CHANGES = {
    "mean_attention_distance": [-1.0, -2.0, -0.5, 0.5, -1.5],
    "attention_distance_variance": [0.3, 0.1, 0.2, 0.4, 0.5],
    "attention_entropy": [0.05, 0.10, 0.02, 0.08, 0.04],
}


def with_attention(summary: dict) -> dict:
    """A `--full` run's summary: with the Fig. 3 diagnostic's changes."""
    seed = summary["seed"]
    summary["full"] = True
    summary["attention_change"] = {
        statistic: {"before": 10.0, "after": 10.0 + changes[seed], "change": changes[seed]}
        for statistic, changes in ATTENTION_CHANGES.items()
    }
    return summary


def test_fig3_changes_get_their_t_interval_and_a_verdict_against_the_papers_direction():
    summaries = [with_attention(fake_results(seed)) for seed in range(5)]
    by_statistic = {entry["statistic"]: entry for entry in seeds.attention_statistics(summaries)}
    distance = by_statistic["mean_attention_distance"]
    assert distance["paper"] == "decreases" and distance["changes"] == ATTENTION_CHANGES["mean_attention_distance"]
    assert distance["as_paper"] == 4  # seeds where it decreased
    changes = ATTENTION_CHANGES["mean_attention_distance"]
    half = T_0975_4 * statistics.stdev(changes) / math.sqrt(5)
    assert distance["mean"] == pytest.approx(-0.9)
    assert (distance["low"], distance["high"]) == pytest.approx((-0.9 - half, -0.9 + half))
    assert distance["low"] < 0 < distance["high"] and seeds.attention_verdict(distance) == "undecided"  # one rose
    variance = by_statistic["attention_distance_variance"]
    assert variance["as_paper"] == 5 and variance["low"] > 0 and seeds.attention_verdict(variance) == "as the paper"
    entropy = by_statistic["attention_entropy"]
    assert entropy["paper"] == "decreases" and entropy["as_paper"] == 0 and entropy["low"] > 0
    assert seeds.attention_verdict(entropy) == "against the paper"
    assert entropy["before"] == [10.0] * 5

    report = seeds.report_markdown(summaries)
    assert (
        "| attention_entropy | decreases | 10, 10, 10, 10, 10 | +0.0500, +0.1000, +0.0200, +0.0800, +0.0400 |"
        in report
    )
    assert "| +0.0580 |" in report and "| 0/5 | against the paper |" in report


def test_full_runs_without_the_attention_diagnostic_are_reported_as_missing():
    report = seeds.report_markdown([fake_results(0, full=True), fake_results(1, full=True)])
    assert "| mean_attention_distance | decreases | missing: no attention_change |" in report
    assert "Uniform attention" not in report


def test_uniform_attention_and_the_minutes_per_seed_are_stated():
    summaries = [with_attention(fake_results(seed)) for seed in range(2)]
    for summary, threads in zip(summaries, (1, None)):
        summary["plan"] |= {"image_size": 64, "vit_model_args": {"patch_size": 8, "num_heads": 4}}
        summary["total_seconds"] = 2400.0
        if threads:
            summary["torch_threads"] = threads
    report = seeds.report_markdown(summaries)
    assert f"Uniform attention has entropy {math.log(65):.4g} nats" in report
    assert "Minutes per seed: seed 0 40.0 (1 thread), seed 1 40.0." in report
    summaries[0] |= {"torch_threads": 2, "reused_seconds": 1320.0}  # a --full seed that kept its default run's stages
    report = seeds.report_markdown(summaries)
    assert "seed 0 40.0 (2 threads; 22.0 of them kept from its default run)" in report


def test_the_comparisons_beside_the_claims_are_paired_like_them():
    rows = dict(SRCC) | {"CFA student, cached CLIP targets": [0.74, 0.76, 0.73, 0.75, 0.74]}
    summaries = [fake_results(seed, rows, full=True) for seed in range(5)]
    choices = seeds.claim_statistics(summaries, pairs=seeds.COMPARISONS)
    choice = claim(choices, "CFA student", "CFA student, cached CLIP targets", "srcc")
    assert choice["differences"] == pytest.approx([0.01, -0.01, 0.02, 0.0, 0.01])
    assert choice["wins"] == 3
    report = seeds.report_markdown(summaries)
    assert "| comparison | metric |" in report
    assert (
        "| CFA student > CFA student, cached CLIP targets | SRCC | +0.0100, -0.0100, +0.0200, +0.0000, +0.0100 |"
        in report
    )


def test_jobs_run_seeds_at_once_each_with_the_plans_threads_and_its_own_log(tmp_path, monkeypatch):
    out = tmp_path / "seeds"
    calls = []

    def fake_quickstart(command, env=None, stdout=None, **kwargs):
        calls.append((command[command.index("--seed") + 1], env.get("OMP_NUM_THREADS"), Path(stdout.name).name))
        folder = Path(command[command.index("--out") + 1])
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps(fake_results(int(command[command.index("--seed") + 1]))))
        return seeds.subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(seeds.subprocess, "run", fake_quickstart)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    seeds.main(["--seeds", "0", "1", "2", "--out", str(out), "--jobs", "2"])
    # No thread limit from outside: the quickstart sets its plan's torch threads itself.
    assert sorted(calls) == [("0", None, "seed-0.log"), ("1", None, "seed-1.log"), ("2", None, "seed-2.log")]
    assert sorted(seeds.seed_folders(out)) == [0, 1, 2]


def test_record_keeps_each_finished_seeds_results_beside_the_run(tmp_path, monkeypatch):
    out, record = tmp_path / "seeds", tmp_path / "record"

    def fake_quickstart(command, **kwargs):
        seed = int(command[command.index("--seed") + 1])
        if seed == 1:
            return seeds.subprocess.CompletedProcess(command, 3)
        folder = Path(command[command.index("--out") + 1])
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps(fake_results(seed)))
        (folder / "models").mkdir()  # what the record leaves behind
        return seeds.subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(seeds.subprocess, "run", fake_quickstart)
    with pytest.raises(SystemExit, match="seed 1 failed"):
        seeds.main(["--seeds", "0", "1", "--out", str(out), "--record", str(record)])
    assert [path.relative_to(record).as_posix() for path in sorted(record.rglob("*"))] == [
        "seed-0",
        "seed-0/results.json",
    ]
    assert seeds.read_results(record) == {0: fake_results(0)}


def test_the_published_seeds_reports_are_the_ones_the_recorded_results_give():
    """Each report on the docs' results page is generated text of the records of its kind of run; the default
    quickstart's seeds are always there, `--full`'s once one has been recorded."""
    results_page = (REPO / "docs" / "results.md").read_text()
    published = {}
    for kind, folder in seeds.RECORDS.items():
        recorded = list(seeds.read_results(REPO / folder).values())
        assert {seeds.run_kind(summary) for summary in recorded} <= {kind}, f"{folder} holds runs of another kind"
        if recorded:
            assert seeds.report_markdown(recorded) in results_page, f"docs/results.md lacks the report of {folder}"
            published[kind] = len(recorded)
        # The page says how far each report is from the seeds it needs, as the records say.
        required = seeds.REQUIRED_SEEDS[kind]
        if 0 < len(recorded) < required:
            assert f"**Interim: {len(recorded)} of the {required} seeds are recorded**" in results_page, kind
    assert published.get("default", 0) >= 2, published
    if "full" not in published:
        assert "No seed of `--full` is recorded yet." in results_page


def test_the_premises_come_first_with_their_margin():
    rows = dict(SRCC) | {
        "CLIP linear probe": [0.77, 0.79, 0.79, 0.78, 0.76],  # 0.01 below the NIMA* teacher: within P1's 0.02
        "Content-pretrained linear probe": [0.60, 0.61, 0.62, 0.60, 0.61],
    }
    summaries = [fake_results(seed, rows) | {"plan": {"splits": {"unlabeled": 12_000, "train": 1_000}}} for seed in
                 range(5)]  # fmt: skip
    premises = seeds.premise_statistics(summaries)
    within = next(p for p in premises if p["b"] == "NIMA* teacher" and p["a"] == "CLIP linear probe" and p["metric"]
                  == "srcc")  # fmt: skip
    assert within["differences"] == pytest.approx([0.01] * 5) and within["margin"] == 0.02
    assert within["verdict"] == "holds"
    probes = next(p for p in premises if p["b"] == "Content-pretrained linear probe" and p["metric"] == "srcc")
    assert probes["verdict"] == "holds" and probes["margin"] == 0.0
    fine_tuned = next(p for p in premises if (p["a"], p["b"], p["metric"]) == ("CLIP fine-tuned", "NIMA* teacher",
                                                                                  "srcc"))  # fmt: skip
    assert fine_tuned["verdict"] == "reversed"
    report = seeds.report_markdown(summaries)
    assert report.index("| premise |") < report.index("| claim |")
    assert "| P1: CLIP linear probe > NIMA* teacher - 0.02 | SRCC | +0.0100," in report
    assert "P3 (the unlabeled pool at least 10x the labeled train split): 12x, met." in report
