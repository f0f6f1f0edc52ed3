"""The SynthAVA quickstart over several seeds: per row, mean ± sample std of SRCC, PLCC and MSE; per premise and per
claim of the paper (row A beats row B), and with `--full` per comparison beside them (the recipe's live-teacher CFA
against the cached-target variant; multi-teacher against single-teacher CFA; SKD's live teacher against the cached
one), the paired difference per seed, its mean, a 95 % t-interval and the win count; with `--full`, for Fig. 3, how
each attention statistic of the ViT moved after CFA on each seed; and each seed's time.

    python benchmarks/seeds.py [--seeds 0 1 2 3 4] [--out outputs/seeds] [--full] [--smoke] [--jobs 2]
        [--reuse-from outputs/seeds-default] [--report-only] [--json seeds.json]
        [--record benchmarks/results/seeds/default]

Each seed runs `cskd quickstart --seed N --out OUT/seed-N` (with `--full`, `--smoke`) in a fresh process (about 22
minutes on 2 cores; --full: about 40, estimated; --smoke: about 2), unless OUT/seed-N/results.json already exists, so
the seeds can be run over several sessions. With `--reuse-from DEFAULT_OUT`, a `--full` seed starts from a copy of
the seed's finished default run and runs only `--full`'s own stages (about 18 minutes), the shared ones kept with the
times they took (`cskd quickstart --reuse`; results.json lists them in `reused_stages`). `--jobs K` runs K seeds at
once, each with the plan's torch threads (the quickstart sets them, so that a seed's numbers do not depend
on how many ran beside it) and its output in OUT/seed-N.log; the stage times in results.json are then not those of a
run alone. Each results.json records its environment (commit, library versions, CPU, threads). The report covers every
OUT/seed-N/results.json found, not only the seeds asked for; it warns when their plans differ (smoke and full runs
mixed, say). With one seed the spread and the intervals are undefined and shown as n/a.

A run's folder (models, caches) stays on the machine that ran it, and machines here do not last; the results.json of
the seeds in the published reports (docs/results.md) are kept in the repository, one folder per kind of run:
benchmarks/results/seeds/default/seed-N/ and benchmarks/results/seeds/full/seed-N/ (`--record` copies each finished
seed there; before-calibration/ keeps the five seeds of the world before #26). `--report-only --out
benchmarks/results/seeds/default` prints that report again.

A claim's difference is A minus B on the same seed (same data, same pretrained stand-ins), so the seed-to-seed
variation both rows share cancels; the interval is mean ± t(0.975, n - 1) · sd / sqrt(n) over the n seeds that have
both rows. A claim's verdict is the one-sided paired t-test of A > B, its p-value adjusted with Holm's method over the
claims of one metric (the comparisons are a family of their own). SynthAVA is synthetic: these numbers say nothing
about real photographs.
"""

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from scipy import stats

from cskd_hf.analysis import PAPER_FIG3_DIRECTIONS
from cskd_hf.synthetic.quickstart import (
    DEFAULT,
    MIN_UNLABELED_RATIO,
    PREMISES,
    SMOKE,
    StageRecord,
    finished_stages,
    run_key,
    vit_tokens,
)

METRICS = ("srcc", "plcc", "mse")
# The paper's claims: (row A, row B), read as "A > B", each in SRCC and PLCC.
CLAIMS = [
    ("CFA teacher", "NIMA* teacher"),
    ("CFA student", "NIMA* student"),
    ("CSKD student (SKD)", "KD student"),
    ("CSKD student (SKD)", "CFA student"),
    ("CFA teacher", "CLIP fine-tuned"),
]
# Comparisons beside the paper's claims, read as "A > B" like them.
COMPARISONS = [
    ("CFA student", "CFA student, cached CLIP targets"),  # the recipe's live teacher against the cache (#15, item 6)
    ("Multi-teacher CFA student", "CFA student, cached CLIP targets"),  # both from caches: the classifier's share
    ("CSKD student, live teacher", "CSKD student (SKD)"),  # SKD's live teacher (eq. 5) against the cache (#26)
]
CLAIM_METRICS = ("srcc", "plcc")

NOT_AVAILABLE = "n/a"
# The results.json of the published reports' seeds (docs/results.md), by kind of run (`run_kind`), kept in the
# repository: a run's folder is not.
RECORDS = {"default": "benchmarks/results/seeds/default", "full": "benchmarks/results/seeds/full"}
# The seeds each published report needs (#26, item 7); with fewer it is published as interim.
REQUIRED_SEEDS = {"default": 10, "full": 5}


def mean_std(values: list[float]) -> dict:
    """Mean and sample standard deviation (ddof 1; None for fewer than 2 values) of `values`."""
    n = len(values)
    mean = sum(values) / n if n else None
    std = math.sqrt(sum((value - mean) ** 2 for value in values) / (n - 1)) if n > 1 else None
    return {"mean": mean, "std": std, "n": n}


def paired_difference(a: list[float], b: list[float], confidence: float = 0.95) -> dict:
    """The per-seed differences a - b, their mean, the two-sided t-interval of the mean (`low`, `high`: None for
    fewer than 2 pairs) and `wins`, the number of seeds where a > b strictly."""
    if len(a) != len(b) or not a:
        raise ValueError(f"paired_difference needs two equally long, non-empty lists, got {len(a)} and {len(b)}")
    differences = [x - y for x, y in zip(a, b)]
    summary = mean_std(differences)
    low = high = None
    if summary["n"] > 1:
        half = stats.t.ppf(0.5 + confidence / 2, summary["n"] - 1) * summary["std"] / math.sqrt(summary["n"])
        low, high = summary["mean"] - half, summary["mean"] + half
    return {
        "differences": differences,
        "mean": summary["mean"],
        "std": summary["std"],
        "low": low,
        "high": high,
        "wins": sum(difference > 0 for difference in differences),
        "n": summary["n"],
    }


def verdict(difference: dict) -> str:
    """What the interval says about "A > B": holds, reversed, or undecided (it contains 0). The claims' verdicts are
    `holm_verdicts`'; this one is the Fig. 3 diagnostic's and a claim's alone."""
    if difference["low"] is None:
        return NOT_AVAILABLE
    if difference["low"] > 0:
        return "holds"
    if difference["high"] < 0:
        return "reversed"
    return "undecided"


def one_sided_p(differences: list[float], alternative: str = "greater") -> float | None:
    """The p-value of the one-sided paired t-test of "mean difference > 0" (`alternative="less"`: "< 0"); None for
    fewer than 2 pairs. Identical differences (no spread) give 0 or 1, where the t statistic is undefined."""
    if len(differences) < 2:
        return None
    if max(differences) == min(differences):
        sign = differences[0] if alternative == "greater" else -differences[0]
        return 0.0 if sign > 0 else 1.0
    return float(stats.ttest_1samp(differences, 0.0, alternative=alternative).pvalue)


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of a family of p-values (None, untested, stays None and does not count)."""
    tested = sorted((p, index) for index, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, index) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p))
        adjusted[index] = running
    return adjusted


def holm_verdicts(claims: list[dict], alpha: float = 0.05) -> list[dict]:
    """Each claim with its one-sided paired t-test of "A > B" (`p`) and Holm's adjustment over the claims of its
    metric (`p_holm`); `verdict`: holds when `p_holm` < `alpha`, reversed when the same family's tests of "A < B"
    say so, else undecided (n/a below two seeds)."""
    tested = [claim for claim in claims if "missing" not in claim]
    for claim in tested:
        claim["p"] = one_sided_p(claim["differences"], "greater")
        claim["p_reverse"] = one_sided_p(claim["differences"], "less")
    for metric in {claim["metric"] for claim in tested}:
        family = [claim for claim in tested if claim["metric"] == metric]
        for key in ("p", "p_reverse"):
            for claim, adjusted in zip(family, holm([claim[key] for claim in family])):
                claim[f"{key}_holm"] = adjusted
    for claim in tested:
        if claim["p_holm"] is None:
            claim["verdict"] = NOT_AVAILABLE
        else:
            reversed_ = claim["p_reverse_holm"] < alpha
            claim["verdict"] = "holds" if claim["p_holm"] < alpha else "reversed" if reversed_ else "undecided"
    return claims


def seed_label(summary: dict, index: int) -> str:
    return str(summary.get("seed", f"#{index}"))


def row_statistics(summaries: list[dict]) -> dict[str, dict]:
    """Per row (in order of first appearance), per metric: mean, std and n over the seeds that have the row."""
    names = list(dict.fromkeys(name for summary in summaries for name in summary["results"]))
    rows = {}
    for name in names:
        present = [summary["results"][name] for summary in summaries if name in summary["results"]]
        rows[name] = {metric: mean_std([row[metric] for row in present if metric in row]) for metric in METRICS}
    return rows


def claim_statistics(
    summaries: list[dict], confidence: float = 0.95, pairs: list[tuple[str, str]] = CLAIMS
) -> list[dict]:
    """Per claim (row A > row B, of `pairs`) and metric, the paired difference over the seeds that have both rows,
    or the rows that no seed has together (`missing`)."""
    claims = []
    for a, b in pairs:
        paired = [summary for summary in summaries if a in summary["results"] and b in summary["results"]]
        labels = [seed_label(summary, index) for index, summary in enumerate(summaries) if summary in paired]
        for metric in CLAIM_METRICS:
            claim = {"a": a, "b": b, "metric": metric}
            if not paired:
                seen = {name for summary in summaries for name in summary["results"]}
                claim["missing"] = [name for name in (a, b) if name not in seen] or [f"{a} and {b} on one seed"]
            else:
                claim["seeds"] = labels
                claim |= paired_difference(
                    [summary["results"][a][metric] for summary in paired],
                    [summary["results"][b][metric] for summary in paired],
                    confidence,
                )
            claims.append(claim)
    return claims


def premise_statistics(summaries: list[dict], confidence: float = 0.95) -> list[dict]:
    """The premises (`PREMISES`: row A > row B - margin) paired like the claims: the differences A - B + margin, so
    that a premise holds as a claim does; each with its `name` and `margin`."""
    premises = []
    for name, a, b, margin in PREMISES:
        for claim in claim_statistics(summaries, confidence, [(a, b)]):
            claim |= {"name": name, "margin": margin}
            if "missing" not in claim:
                shifted = paired_difference([d + margin for d in claim["differences"]], [0.0] * claim["n"], confidence)
                claim |= {key: shifted[key] for key in ("differences", "mean", "low", "high", "wins")}
            premises.append(claim)
    return holm_verdicts(premises)


def unlabeled_ratio_line(summaries: list[dict]) -> str:
    """P3: the unlabeled pool against the labeled train split, per seed's plan."""
    ratios = [summary.get("plan", {}).get("splits", {}) for summary in summaries]
    values = sorted({round(s["unlabeled"] / s["train"], 1) for s in ratios if s.get("train")})
    if not values:
        return "P3 (unlabeled >= 10x labeled train): the runs' plans do not say."
    met = "met" if min(values) >= MIN_UNLABELED_RATIO else "not met"
    shown = " to ".join(f"{value:g}x" for value in (values[0], values[-1])[: len(values)])
    return f"P3 (the unlabeled pool at least {MIN_UNLABELED_RATIO}x the labeled train split): {shown}, {met}."


def attention_statistics(summaries: list[dict], confidence: float = 0.95) -> list[dict]:
    """Per Fig. 3 statistic, its change after CFA (after - before, averaged over layers) on each seed that has the
    diagnostic: the changes, their mean and t-interval (`low`, `high`), `as_paper` (the seeds where it moved the way
    the paper reports) and `before`, the statistic before CFA per seed."""
    with_change = [summary for summary in summaries if summary.get("attention_change")]
    labels = [seed_label(summary, index) for index, summary in enumerate(summaries) if summary in with_change]
    statistics = []
    for statistic, direction in PAPER_FIG3_DIRECTIONS.items():
        entry = {"statistic": statistic, "paper": "decreases" if direction < 0 else "increases", "seeds": labels}
        if not with_change:
            statistics.append(entry | {"missing": True})
            continue
        changes = [summary["attention_change"][statistic]["change"] for summary in with_change]
        change = paired_difference(changes, [0.0] * len(changes), confidence)
        entry |= {"changes": changes, "mean": change["mean"], "low": change["low"], "high": change["high"]}
        entry["as_paper"] = sum(value * direction > 0 for value in changes)
        entry["before"] = [summary["attention_change"][statistic]["before"] for summary in with_change]
        statistics.append(entry | {"n": len(changes)})
    return statistics


def attention_verdict(entry: dict) -> str:
    """What the interval of a Fig. 3 change says against the paper's direction."""
    if entry["low"] is None:
        return NOT_AVAILABLE
    direction = PAPER_FIG3_DIRECTIONS[entry["statistic"]]
    if entry["low"] > 0 or entry["high"] < 0:
        return "as the paper" if (entry["low"] > 0) == (direction > 0) else "against the paper"
    return "undecided"


def uniform_attention_entropy(summary: dict) -> float | None:
    """The entropy of uniform attention over the Fig. 3 ViT's tokens, when the seed's plan has the ViT."""
    plan = summary.get("plan", {})
    return math.log(vit_tokens(plan)) if "patch_size" in plan.get("vit_model_args", {}) else None


def seed_minutes(summary: dict) -> str:
    """A seed's time in minutes (its stages' times summed), with the threads it ran with and the minutes of it kept
    from an earlier run (`--reuse`) when those are recorded."""
    minutes = f"{summary['total_seconds'] / 60:.1f}" if "total_seconds" in summary else "–"
    notes = []
    if (threads := summary.get("torch_threads")) is not None:
        notes.append(f"{threads} thread{'s' if threads > 1 else ''}")
    if summary.get("reused_seconds"):
        notes.append(f"{summary['reused_seconds'] / 60:.1f} of them kept from its default run")
    return f"{minutes} ({'; '.join(notes)})" if notes else minutes


def has_full_rows(summary: dict) -> bool:
    """Whether a run has `--full`'s rows (the runs before `--full` existed ran every row)."""
    return summary.get("full", True)


def run_kind(summary: dict) -> str:
    """The quickstart's options of a run, as the report names its plan: `default`, `full`, `smoke` or `smoke, full`."""
    if summary.get("smoke"):
        return "smoke, full" if has_full_rows(summary) else "smoke"
    return "full" if has_full_rows(summary) else "default"


def plan_differences(summaries: list[dict]) -> list[str]:
    """The settings (`smoke`, the plan's fields) in which the seeds' runs differ, each with its values per seed."""
    settings = [{"smoke": summary.get("smoke"), **summary.get("plan", {})} for summary in summaries]
    keys = list(dict.fromkeys(key for setting in settings for key in setting))
    lines = []
    for key in keys:
        values = [setting.get(key) for setting in settings]
        if any(value != values[0] for value in values):
            per_seed = ", ".join(
                f"seed {seed_label(summary, index)}: {value}"
                for index, (summary, value) in enumerate(zip(summaries, values))
            )
            lines.append(f"{key} ({per_seed})")
    return lines


def mean_cell(summary: dict) -> str:
    if summary["n"] == 0:
        return "–"
    std = NOT_AVAILABLE if summary["std"] is None else f"{summary['std']:.4f}"
    return f"{summary['mean']:.4f} ± {std}"


def report_markdown(summaries: list[dict], confidence: float = 0.95) -> str:
    """The report over `summaries` (quickstart results.json dicts, one per seed) as markdown: the runs, a table of
    rows and a table of claims."""
    if not summaries:
        return "No results: no seed-N/results.json found."
    seeds = [seed_label(summary, index) for index, summary in enumerate(summaries)]
    kinds = sorted({run_kind(summary) for summary in summaries})
    kind = kinds[0] if len(kinds) == 1 else "mixed " + " and ".join(kinds)
    lines = [f"SynthAVA quickstart, {len(summaries)} seed{'s' if len(summaries) > 1 else ''} ({', '.join(seeds)}), "]
    lines[0] += f"{kind} plan. SynthAVA is synthetic: these numbers say nothing about real photographs."
    repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if repeated:
        lines += ["", f"**Warning: seed {', '.join(repeated)} appears more than once**; its runs are not independent."]
    differing = plan_differences(summaries)
    if differing:
        lines += ["", "**Warning: the runs differ in their settings**: " + "; ".join(differing) + "."]
    if len(summaries) == 1:
        lines += ["", "One seed: the spread and the intervals are undefined (n/a)."]

    rows = row_statistics(summaries)
    lines += ["", "| row | seeds | SRCC | PLCC | MSE |", "|---|---:|---:|---:|---:|"]
    for name, row in rows.items():
        seeds_with_row = max(summary["n"] for summary in row.values())
        cells = " | ".join(mean_cell(row[metric]) for metric in METRICS)
        lines.append(f"| {name} | {seeds_with_row} | {cells} |")

    percent = f"{confidence:.0%}"
    lines += [
        "",
        "The seed papers' premises first (rows with neither CFA nor SKD), paired like the claims: P1 and P2 as "
        "A > B - margin (the difference shown is A - B + margin), a family of their own for Holm's method.",
        "",
        *claims_table(premise_statistics(summaries, confidence), len(summaries), percent, "premise"),
        "",
        unlabeled_ratio_line(summaries),
        "",
        f"Claims (A > B), paired by seed: difference A - B per seed ({', '.join(seeds)}), its mean, the {percent} "
        "t-interval of the mean, wins (seeds with A > B), the one-sided paired t-test of A > B and its p-value "
        "adjusted with Holm's method over the claims of one metric; the verdict is that adjusted p below 0.05 "
        "(holds), the same test of A < B below 0.05 (reversed), or neither (undecided).",
        "",
        *claims_table(holm_verdicts(claim_statistics(summaries, confidence)), len(summaries), percent, "claim"),
        "",
    ]
    if not any(has_full_rows(summary) for summary in summaries):
        lines.append(
            "The comparisons of the recipe's variants and Fig. 3 are in `--full` runs (`python benchmarks/seeds.py "
            "--full`): these runs have neither."
        )
    else:
        lines += full_sections(summaries, confidence)
    lines += [
        "",
        "Minutes per seed: "
        + ", ".join(
            f"seed {seed_label(summary, index)} {seed_minutes(summary)}" for index, summary in enumerate(summaries)
        )
        + ".",
    ]
    return "\n".join(lines)


def full_sections(summaries: list[dict], confidence: float) -> list[str]:
    """The report's sections on `--full` runs: the variants' comparisons and Fig. 3."""
    percent = f"{confidence:.0%}"
    lines = [
        "Beside the claims, paired the same way: the recipe's live-teacher CFA against the cached-target variant, "
        "multi-teacher CFA against single-teacher CFA (both from caches), and SKD's live teacher (the paper's eq. 5) "
        "against the CSKD row's cached one.",
        "",
        *claims_table(
            holm_verdicts(claim_statistics(summaries, confidence, COMPARISONS)), len(summaries), percent, "comparison"
        ),
        "",
        f"Fig. 3: the ViT's attention after CFA minus before, averaged over layers, per seed; the mean change, its "
        f"{percent} t-interval, and the seeds where it moved the way the paper reports.",
        "",
        f"| statistic | paper | before CFA, per seed | change per seed | mean change | {percent} interval | "
        "as paper | verdict |",
        "|---|---|---|---|---:|---|---:|---|",
    ]
    attention = attention_statistics(summaries, confidence)
    for entry in attention:
        if "missing" in entry:
            lines.append(
                f"| {entry['statistic']} | {entry['paper']} | missing: no attention_change | – | – | – | – | – |"
            )
            continue
        before = ", ".join(f"{value:.4g}" for value in entry["before"])
        per_seed = ", ".join(f"{change:+.4f}" for change in entry["changes"])
        interval = NOT_AVAILABLE if entry["low"] is None else f"[{entry['low']:+.4f}, {entry['high']:+.4f}]"
        lines.append(
            f"| {entry['statistic']} | {entry['paper']} | {before} | {per_seed} | {entry['mean']:+.4f} | {interval} | "
            f"{entry['as_paper']}/{entry['n']} | {attention_verdict(entry)} |"
        )
    uniform = [uniform_attention_entropy(summary) for summary in summaries if summary.get("attention_change")]
    if uniform and uniform[0] is not None:
        lines += [
            "",
            f"Uniform attention has entropy {uniform[0]:.4g} nats (over the ViT's tokens) and no variance over heads: "
            "a ViT that attends almost uniformly before CFA can only lower its entropy and raise the variance.",
        ]
    return lines


def p_cell(p: float | None) -> str:
    return NOT_AVAILABLE if p is None else "< 0.0001" if p < 1e-4 else f"{p:.4f}"


def claims_table(claims: list[dict], seeds: int, percent: str, kind: str) -> list[str]:
    """The markdown table of `claims` (`claim_statistics`), over `seeds` seeds in all."""
    lines = [
        f"| {kind} | metric | per seed | mean | {percent} interval | wins | p (one-sided) | Holm p | verdict |",
        "|---|---|---|---:|---|---:|---:|---:|---|",
    ]
    for claim in claims:
        name = f"{claim['a']} > {claim['b']}"
        if "name" in claim:  # a premise
            name = f"{claim['name']}: {name}" + (f" - {claim['margin']:g}" if claim["margin"] else "")
        metric = claim["metric"].upper()
        if "missing" in claim:
            lines.append(f"| {name} | {metric} | missing: {', '.join(claim['missing'])} | – | – | – | – | – | – |")
            continue
        per_seed = ", ".join(f"{difference:+.4f}" for difference in claim["differences"])
        if len(claim["seeds"]) != seeds:
            per_seed += f" (seeds {', '.join(claim['seeds'])})"
        interval = NOT_AVAILABLE if claim["low"] is None else f"[{claim['low']:+.4f}, {claim['high']:+.4f}]"
        lines.append(
            f"| {name} | {metric} | {per_seed} | {claim['mean']:+.4f} | {interval} | {claim['wins']}/{claim['n']} | "
            f"{p_cell(claim['p'])} | {p_cell(claim['p_holm'])} | {claim['verdict']} |"
        )
    return lines


def report_json(summaries: list[dict], confidence: float = 0.95) -> dict:
    return {
        "seeds": [seed_label(summary, index) for index, summary in enumerate(summaries)],
        "confidence": confidence,
        "setting differences": plan_differences(summaries),
        "rows": row_statistics(summaries),
        "premises": premise_statistics(summaries, confidence),
        "claims": holm_verdicts(claim_statistics(summaries, confidence)),
        "comparisons": holm_verdicts(claim_statistics(summaries, confidence, COMPARISONS)),
        "fig3": [
            entry | {"verdict": attention_verdict(entry)} if "missing" not in entry else entry
            for entry in attention_statistics(summaries, confidence)
        ],
    }


def seed_folders(out: Path) -> dict[int, Path]:
    """The seed-N folders under `out` that hold a results.json, by N."""
    found = {}
    for folder in out.glob("seed-*"):
        match = re.fullmatch(r"seed-(\d+)", folder.name)
        if match and (folder / "results.json").is_file():
            found[int(match.group(1))] = folder
    return dict(sorted(found.items()))


def read_results(out: Path) -> dict[int, dict]:
    """The results.json of each seed-N folder under `out`, by N, each with its `seed` (set to N where the file has
    none; a note is printed where the file says another seed)."""
    summaries = {}
    for seed, folder in seed_folders(out).items():
        summary = json.loads((folder / "results.json").read_text())
        if summary.setdefault("seed", seed) != seed:
            print(f"Note: {folder / 'results.json'} is a run of seed {summary['seed']}, not {seed}.")
        summaries[seed] = summary
    return summaries


def run_seed(seed: int, folder: Path, options: list[str], log: bool = False, record: Path | None = None) -> None:
    """`cskd quickstart` for one seed with its `options` (`--smoke`, `--full`), in a fresh process (no state carried
    from one seed to the next) with the plan's torch threads; with `log`, its output written to `<folder>.log`; with
    `record`, its results.json copied to record/seed-N/ once the run has finished."""
    command = [sys.executable, "-m", "cskd_hf.cli", "quickstart", "--seed", str(seed), "--out", str(folder), *options]
    print(f"== seed {seed}: {' '.join(command)}", flush=True)
    if not log:
        result = subprocess.run(command)
    else:
        log_path = folder.with_name(folder.name + ".log")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "w") as output:
            result = subprocess.run(command, env=dict(os.environ), stdout=output, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise SystemExit(f"the quickstart for seed {seed} failed (exit status {result.returncode}); see its output")
    if record is not None:
        (record / folder.name).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / "results.json", record / folder.name / "results.json")


def start_from(source: Path, folder: Path, key: dict) -> None:
    """Copy the finished run `source` (the default run of a seed) to `folder`, for `cskd quickstart --reuse` to keep
    its stages there: its data, models and log, and its stage record (made from its results.json for a run of a
    version without one); not its report, which the run in `folder` writes anew, nor its caches (their descriptions
    name the source's paths; no stage `--reuse` runs reads them). The run must be of `key` (seed and plan, `full`
    aside); the copy appears whole or not at all."""
    finished = finished_stages(source / "results.json", key)  # refuses a run of another seed or plan before copying
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # a copy cut short before
    shutil.copytree(
        source,
        partial,
        ignore=lambda directory, names: [
            name
            for name in names
            if name in ("results.json", "results.md", "ier.png") or (Path(directory) == source and name == "cache")
        ],
    )
    if not (partial / "stages.json").exists():
        StageRecord(partial / "stages.json", key, finished).save()
    os.replace(partial, folder)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="the seeds to run")
    parser.add_argument("--out", default="outputs/seeds", help="each seed's run goes to OUT/seed-N")
    parser.add_argument("--smoke", action="store_true", help="run `cskd quickstart --smoke` (about 2 minutes a seed)")
    parser.add_argument(
        "--full",
        action="store_true",
        help="run `cskd quickstart --full` (about 40 minutes a seed; default: about 22)",
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="seeds run at once, each with the plan's torch threads and its own log"
    )
    parser.add_argument(
        "--reuse-from",
        help="a seed not yet in OUT whose run is finished in REUSE_FROM/seed-N (the default runs, for --full) starts "
        "from a copy of that run and runs only the stages it lacks (`cskd quickstart --reuse`); a seed stopped in OUT "
        "goes on from the stages it finished",
    )
    parser.add_argument("--report-only", action="store_true", help="run nothing; report on the results found")
    parser.add_argument("--confidence", type=float, default=0.95, help="of the paired t-intervals")
    parser.add_argument("--json", help="also write the statistics here")
    parser.add_argument(
        "--record",
        help="also copy each seed's results.json to RECORD/seed-N/ (the published seeds: "
        + ", ".join(f"{folder} for {kind} runs" for kind, folder in RECORDS.items())
        + ")",
    )
    args = parser.parse_args(argv)
    out = Path(args.out)
    record = Path(args.record) if args.record else None
    reuse_from = Path(args.reuse_from) if args.reuse_from else None
    chosen_options = (("--smoke", args.smoke), ("--full", args.full), ("--reuse", reuse_from is not None))
    options = [option for option, chosen in chosen_options if chosen]
    if not args.report_only:
        pending = []
        for seed in args.seeds:
            folder = out / f"seed-{seed}"
            if (folder / "results.json").is_file():
                print(f"== seed {seed}: {folder / 'results.json'} exists, skipped", flush=True)
                continue
            source = reuse_from / f"seed-{seed}" if reuse_from else None
            if source and not folder.exists() and (source / "results.json").is_file():
                print(f"== seed {seed}: starting from a copy of {source}", flush=True)
                start_from(source, folder, run_key(SMOKE if args.smoke else DEFAULT, seed))
            pending.append((seed, folder))
        jobs = min(args.jobs, len(pending))
        if jobs > 1:
            with ThreadPoolExecutor(jobs) as pool:
                futures = [pool.submit(run_seed, *run, options, True, record) for run in pending]
                try:
                    for future in futures:
                        future.result()
                except BaseException:
                    pool.shutdown(cancel_futures=True)  # no new seed starts after a failure
                    raise
        else:
            for run in pending:
                run_seed(*run, options, record=record)
    summaries = read_results(out)
    missing = sorted(set(args.seeds) - set(summaries))
    print(report_markdown(list(summaries.values()), args.confidence))
    if missing:
        print(f"\nNo results yet for seed{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} in {out}.")
    if args.json:
        Path(args.json).write_text(json.dumps(report_json(list(summaries.values()), args.confidence), indent=1))


if __name__ == "__main__":
    main()
