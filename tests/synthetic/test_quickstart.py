"""`cskd_hf.synthetic.quickstart`: the trainer arguments it plans equal what its former command lines parsed
into (so that every run, and every result, stays as it was); the default plan runs the paper's and the premise rows,
`--full` the rest; its smoke run with `--full` (slow) leaves every artefact, the Fig. 3 panel and a student that
learned."""

import json
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch
from datasets import load_dataset
from safetensors.torch import load_file
from transformers import AutoModel, AutoModelForImageClassification

from cskd_hf.cli import main
from cskd_hf.synthetic.quickstart import (
    ALWAYS_RUN,
    BASELINE_ROWS,
    DEFAULT,
    FULL,
    MULTI_TEACHER_CFA,
    PREMISE_ROWS,
    ROWS,
    SMOKE,
    VARIANT_OF,
    VARIANT_ROWS,
    VIT_AFTER_CFA,
    VIT_BEFORE_CFA,
    ZERO_SHOT_ROW,
    QuickstartPlan,
    StageRecord,
    Stages,
    planned_stages,
    trainer_arguments,
)
from cskd_hf.training.arguments import parse_arguments
from cskd_hf.training.cfa import CFAArguments
from cskd_hf.training.skd import SKDArguments
from cskd_hf.training.supervised import FinetuneArguments

SMOKE_FULL = replace(SMOKE, full=True)
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # the quickstart's smoke run (at most 3 minutes on 2 cores), then --full's stages added to it
def test_a_smoke_run_runs_the_default_rows_only_and_says_it_is_too_small_to_compare(tmp_path, capfd):
    from cskd_hf.synthetic.quickstart import plan_rows

    out = tmp_path / "smoke"
    assert main(["quickstart", "--smoke", "--out", str(out), "--seed", "1"]) == 0
    summary = json.loads((out / "results.json").read_text())
    assert set(summary["results"]) == {name for name, _ in plan_rows(SMOKE)} | {ZERO_SHOT_ROW, "untrained student"}
    assert list(summary["stage_seconds"]) == planned_stages(SMOKE)
    assert (
        summary["attention"] == {} and not (out / "attention").exists() and not (out / "models" / "cfa-vit").exists()
    )
    console = capfd.readouterr().out  # the console is a copy of the standard output's file descriptor
    assert "A smoke run is too small to compare rows" in console and "attention/" not in console
    assert "## Attention before and after CFA" not in (out / "results.md").read_text()

    # --full on the finished run keeps its stages: only --full's own run now, and the shared rows are the same models.
    assert main(["quickstart", "--smoke", "--full", "--reuse", "--out", str(out), "--seed", "1"]) == 0
    extended = json.loads((out / "results.json").read_text())
    assert extended["full"] and list(extended["stage_seconds"]) == planned_stages(SMOKE_FULL)
    kept = [name for name in planned_stages(SMOKE) if name not in ALWAYS_RUN]
    assert extended["reused_stages"] == kept
    assert all(extended["stage_seconds"][name] == summary["stage_seconds"][name] for name in kept)
    assert extended["reused_seconds"] == round(sum(summary["stage_seconds"][name] for name in kept), 1)
    assert extended["reused_from"] == [summary["environment"]]  # the code and machine that made the kept stages
    for name, _ in plan_rows(SMOKE):
        assert extended["results"][name] == summary["results"][name], name
    assert set(extended["results"]) >= {name for name, _ in VARIANT_ROWS + BASELINE_ROWS}
    console = capfd.readouterr().out
    assert sum("reused" in line.split() for line in console.splitlines()) == len(kept)


@pytest.mark.slow  # the quickstart's smoke run with --full: about 4 minutes on 2 cores
def test_every_artefact_exists_and_loads(smoke_run):
    summary = json.loads((smoke_run / "results.json").read_text())
    rows = {name for name, _ in ROWS + VARIANT_ROWS + BASELINE_ROWS} | {ZERO_SHOT_ROW, "untrained student"}
    assert set(summary["results"]) == rows
    assert list(summary["stage_seconds"]) == planned_stages(SMOKE_FULL)  # the console's plan is what ran
    assert summary["smoke"] and summary["full"] and summary["plan"] == asdict(SMOKE_FULL)
    assert (smoke_run / "ier.png").stat().st_size > 10_000
    markdown = (smoke_run / "results.md").read_text()
    assert "synthetic" in markdown and "CSKD student (SKD)" in markdown
    assert summary["total_seconds"] > 0 and "cskd-student" in summary["stage_seconds"]
    assert summary["torch_threads"] == SMOKE.torch_threads == summary["environment"]["torch_threads"]
    assert summary["environment"]["torch"] == torch.__version__
    for _, folder in ROWS + VARIANT_ROWS + BASELINE_ROWS:
        model = AutoModelForImageClassification.from_pretrained(smoke_run / "models" / folder)
        assert model.config.num_bins == 10
    assert (smoke_run / "models" / "tiny-clip" / "tokenizer.json").exists()
    assert (
        AutoModelForImageClassification.from_pretrained(smoke_run / "models" / "clip-finetuned").config.backbone_type
        == "clip"
    )
    assert summary["results"][ZERO_SHOT_ROW]["score_map"]["slope"] > 0
    assert (smoke_run / "attention" / "attention.png").exists() and len(summary["attention"]) == 4
    assert "Fig. 3" in markdown and "Multi-teacher CFA student" in markdown


@pytest.mark.slow  # the quickstart's smoke run with --full: about 4 minutes on 2 cores
def test_the_fig_3_panel_compares_a_vit_before_and_after_cfa(smoke_run):
    summary = json.loads((smoke_run / "results.json").read_text())
    before, after = summary["attention"][VIT_BEFORE_CFA], summary["attention"][VIT_AFTER_CFA]
    assert len(before["mean_attention_distance"]) == len(after["mean_attention_distance"]) == 6  # test_vit's layers
    assert len(after["mean_attention_distance_per_head"][0]) == summary["plan"]["vit_model_args"]["num_heads"]
    # "before" is the backbone CFA started from: the content-pretrained checkpoint, weight for weight
    vit = AutoModel.from_pretrained(smoke_run / "models" / "content-pretrained-vit")
    checkpoint = load_file(
        smoke_run / "models" / f"content-pretrained-{summary['plan']['vit_architecture']}.safetensors"
    )
    assert checkpoint and all(
        torch.equal(vit.backbone.state_dict()[name], tensor) for name, tensor in checkpoint.items()
    )
    assert before["mean_attention_distance"] != after["mean_attention_distance"]  # CFA moved the weights
    change = summary["attention_change"]["attention_entropy"]
    assert change["change"] == pytest.approx(
        sum(after["attention_entropy"]) / 6 - sum(before["attention_entropy"]) / 6
    )
    markdown = (smoke_run / "results.md").read_text()
    assert "The paper (ViT-Tiny, before and after CFA): the mean attention distance decreases" in markdown
    assert f"entropy {change['before']:.4g} → {change['after']:.4g}" in markdown


@pytest.mark.slow  # the quickstart's smoke run with --full: about 4 minutes on 2 cores
def test_the_cskd_student_learned(smoke_run):
    results = json.loads((smoke_run / "results.json").read_text())["results"]
    # Measured on seeds 0-2: CSKD student 0.58-0.68, untrained -0.24-0.13.
    assert results["CSKD student (SKD)"]["srcc"] > results["untrained student"]["srcc"] + 0.25


@pytest.mark.slow  # the quickstart's smoke run with --full: about 4 minutes on 2 cores
def test_cskd_score_works_on_the_test_images_with_the_student(smoke_run, tmp_path, capsys):
    test = load_dataset(str(smoke_run / "synthava"), split="test").select(range(6))
    paths = []
    for i, image in enumerate(test["image"]):
        paths.append(tmp_path / f"test{i}.jpg")
        image.save(paths[-1])
    output = tmp_path / "scores.jsonl"
    student = smoke_run / "models" / "cskd-student"
    assert main(["score", *map(str, paths), "--model", str(student), "--output", str(output), "--no-progress"]) == 0
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(records) == 6 and all(1 <= r["score"] <= 10 for r in records)


def command_lines(plan: QuickstartPlan, out_dir, seed: int) -> dict[str, tuple[type, list[str]]]:
    """Each trainer's arguments class and argv, by stage name in the order they ran, as the quickstart built them
    before it built dataclasses (commit b71d30d), copied from it."""
    data_dir, models, cache = out_dir / "synthava", out_dir / "models", out_dir / "cache"
    source = f"parquet:{data_dir / 'data' / 'unlabeled-*.parquet'}"
    architecture = {"teacher": plan.teacher_architecture, "student": plan.student_architecture}
    imagenet = {role: models / f"content-pretrained-{arch}.safetensors" for role, arch in architecture.items()}

    def common(row: str | None = None) -> list[str]:
        learning_rate = plan.row_learning_rates.get(VARIANT_OF.get(row, row), plan.learning_rate)
        return [
            "--seed", str(seed), "--image_size", str(plan.image_size), "--batch_size", str(plan.batch_size),
            "--learning_rate", str(learning_rate), "--num_workers", str(plan.num_workers), "--report_to", "none",
            "--checkpointing_steps", "100000", "--checkpoints_total_limit", "1",
        ]  # fmt: skip

    runs = {}
    for role in ("teacher", "student"):
        runs[f"CFA ({role})"] = (CFAArguments, [
            "--teacher", str(models / "tiny-clip"), "--unlabeled", source, "--architecture", architecture[role],
            "--backbone_checkpoint_path", str(imagenet[role]), "--num_epochs", str(plan.cfa_epochs),
            "--lr_decay_epochs", str(plan.cfa_epochs),
            "--output_dir", str(models / f"cfa-{role}"), *common(),
        ])  # fmt: skip

    # Changes since: every scorer has the MLP head, NIMA* and the baselines included (#26: pre-trained weights the
    # only difference); Hou et al.'s joint mode; CFA with the live teacher, and from the cache as a variant; SKD with
    # mu = 15 from the teacher cache; the Fig. 3 ViT.
    mlp_head = ["--head_hidden_sizes", str(plan.head_hidden_size)]

    def finetune(name: str, role: str, start: list[str], epochs: int):
        runs[name] = (FinetuneArguments, [
            "--dataset", str(data_dir), "--architecture", architecture[role], *start, "--num_epochs", str(epochs),
            "--lr_decay_epochs", str(min(plan.lr_decay_epoch, epochs - 1)), "--head_dropout", str(plan.head_dropout),
            *mlp_head, "--output_dir", str(models / name), *common(name),
        ])  # fmt: skip

    finetune("nima-teacher", "teacher", ["--backbone_checkpoint_path", str(imagenet["teacher"])], plan.finetune_epochs)
    finetune("cfa-teacher-scorer", "teacher", ["--model", str(models / "cfa-teacher")], plan.finetune_epochs)
    finetune("nima-student", "student", ["--backbone_checkpoint_path", str(imagenet["student"])], plan.student_epochs)
    finetune("cfa-student-scorer", "student", ["--model", str(models / "cfa-student")], plan.student_epochs)

    def distil(name: str) -> list[str]:
        return [
            "--dataset", str(data_dir), "--teacher", str(models / "cfa-teacher-scorer"),
            "--model", str(models / "cfa-student"), "--num_epochs", str(plan.student_epochs),
            "--lr_decay_epochs", str(min(plan.lr_decay_epoch, plan.student_epochs - 1)),
            "--head_dropout", str(plan.head_dropout), *mlp_head, "--beta", str(plan.beta), *common(name),
        ]  # fmt: skip

    runs["kd-student"] = (SKDArguments, [*distil("kd-student"), "--output_dir", str(models / "kd-student")])
    runs["cskd-student"] = (SKDArguments, [
        *distil("cskd-student"), "--unlabeled", source, "--mu", str(plan.mu),
        "--teacher_cache", str(cache / "skd-teacher"), "--output_dir", str(models / "cskd-student"),
    ])  # fmt: skip
    # Since #26 the default plan runs the paper's rows and the premise rows; `--full` the rest, SKD with the live
    # teacher among them.
    if not plan.full:
        finetune("clip-finetuned", "student", ["--clip_backbone", str(models / "tiny-clip")], plan.finetune_epochs)
        return runs
    runs["CFA (student, cached targets)"] = (CFAArguments, [
        "--teacher", str(models / "tiny-clip"), "--unlabeled", source, "--architecture", architecture["student"],
        "--backbone_checkpoint_path", str(imagenet["student"]), "--num_epochs", str(plan.cfa_epochs),
        "--lr_decay_epochs", str(plan.cfa_epochs), "--teacher_cache", str(cache / "student"),
        "--output_dir", str(models / "cfa-student-cached"), *common(),
    ])  # fmt: skip
    finetune(
        "cfa-student-cached-scorer", "student", ["--model", str(models / "cfa-student-cached")], plan.student_epochs,
    )  # fmt: skip
    runs["cskd-student-live"] = (SKDArguments, [
        *distil("cskd-student-live"), "--unlabeled", source, "--mu", str(plan.mu),
        "--output_dir", str(models / "cskd-student-live"),
    ])  # fmt: skip
    runs["CFA (ViT)"] = (CFAArguments, [
        "--teacher", str(models / "tiny-clip"), "--unlabeled", source, "--architecture", plan.vit_architecture,
        "--backbone_checkpoint_path", str(models / f"content-pretrained-{plan.vit_architecture}.safetensors"),
        "--num_epochs", str(plan.cfa_epochs), "--lr_decay_epochs", str(plan.cfa_epochs),
        "--output_dir", str(models / "cfa-vit"), "--model_args", json.dumps(plan.vit_model_args), *common(),
    ])  # fmt: skip
    finetune("clip-finetuned", "student", ["--clip_backbone", str(models / "tiny-clip")], plan.finetune_epochs)
    runs["CFA (student, two teachers)"] = (CFAArguments, [
        "--teacher", str(models / "tiny-clip"),
        "--teacher", f"timm:{plan.teacher_architecture}@{imagenet['teacher']}",
        "--unlabeled", source, "--architecture", plan.student_architecture,
        "--backbone_checkpoint_path", str(imagenet["student"]), "--num_epochs", str(plan.cfa_epochs),
        "--lr_decay_epochs", str(plan.cfa_epochs),
        # One change from the old command line: the tiny CLIP's cache folder is the one-teacher run's, named
        # directly, where the old one linked cache/multi-teacher/teacher0 to it.
        "--teacher_caches", str(cache / "student"), str(cache / "multi-teacher" / "teacher1"),
        "--output_dir", str(models / "multi-teacher-cfa-student"), *common(),
    ])  # fmt: skip
    finetune(
        "multi-teacher-cfa-student-scorer",
        "student",
        ["--model", str(models / "multi-teacher-cfa-student")],
        plan.student_epochs,
    )
    classifier = f"timm:{plan.teacher_architecture}@{imagenet['teacher']}"
    hou = ["--backbone_checkpoint_path", str(imagenet["student"]), "--alignment_teacher", classifier]
    finetune("hou-joint-student", "student", hou, plan.student_epochs)
    return runs


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("plan", [DEFAULT, FULL, SMOKE, SMOKE_FULL], ids=["default", "full", "smoke", "smoke-full"])
def test_trainer_arguments_are_those_the_command_lines_parsed_into(plan, seed, tmp_path):
    out_dir = tmp_path / "quickstart"
    planned = trainer_arguments(plan, out_dir, seed)
    expected = command_lines(plan, out_dir, seed)
    assert list(planned) == list(expected)  # the same runs, in the same order
    for name, (arguments_class, argv) in expected.items():
        assert type(planned[name]) is arguments_class, name
        assert planned[name] == parse_arguments(arguments_class, argv), name
    assert not out_dir.exists()  # planned, nothing run or written


def test_the_multi_teacher_run_reads_the_clip_targets_the_cached_variant_cached_before_it(tmp_path):
    planned = trainer_arguments(SMOKE_FULL, tmp_path)
    multi, single = planned[MULTI_TEACHER_CFA], planned["CFA (student, cached targets)"]
    assert multi.teacher[0] == single.teacher[0]  # the tiny CLIP
    assert multi.cache_dir(0) == single.cache_dir(0)  # its cache, named directly: no link
    assert multi.cache_dir(1) != single.cache_dir(0) and Path(multi.cache_dir(1)).name == "teacher1"
    order = list(planned)
    assert order.index("CFA (student, cached targets)") < order.index(MULTI_TEACHER_CFA)


@pytest.mark.parametrize("plan", [FULL, SMOKE_FULL], ids=["full", "smoke-full"])
def test_the_method_runs_are_the_papers_recipe_and_the_cached_cfa_is_a_variant_beside_it(plan, tmp_path):
    planned = trainer_arguments(plan, tmp_path)
    for role in ("teacher", "student"):  # eq. 1 on the view the student sees: the live teacher
        assert planned[f"CFA ({role})"].teacher_cache is None and not planned[f"CFA ({role})"].teacher_caches
    variant, paper = planned["CFA (student, cached targets)"], planned["CFA (student)"]
    assert variant.teacher_cache is not None
    assert (variant.architecture, variant.backbone_checkpoint_path) == (
        paper.architecture,
        paper.backbone_checkpoint_path,
    )
    skd, live = planned["cskd-student"], planned["cskd-student-live"]
    assert (skd.mu, skd.beta) == (15, 15.0) and skd.teacher_cache is not None
    assert (
        live.teacher_cache is None and replace(live, teacher_cache=skd.teacher_cache, output_dir=skd.output_dir) == skd
    )
    vit = planned["CFA (ViT)"]
    assert vit.architecture == "test_vit" and vit.model_args["patch_size"] == 8 and vit.teacher_cache is None


def test_a_full_run_states_the_premises_before_the_claims():
    from cskd_hf.synthetic.quickstart import PREMISES, premise_verdicts

    srcc = {"CLIP linear probe": 0.70, "Content-pretrained linear probe": 0.77, "NIMA* teacher": 0.71,
            "CLIP fine-tuned": 0.75}  # fmt: skip
    results = {name: {"srcc": value} for name, value in srcc.items()}
    lines = premise_verdicts(results, FULL.splits)
    assert len(lines) == 1 + len(PREMISES) + 1
    assert "P1: CLIP linear probe > Content-pretrained linear probe: SRCC 0.700 vs 0.770, not met" in lines[1]
    assert "P1: CLIP linear probe > NIMA* teacher - 0.02: SRCC 0.700 vs 0.710, met" in lines[2]
    assert lines[3].endswith("SRCC 0.750 vs 0.700, met") and lines[4].endswith("met")
    ratio = FULL.splits["unlabeled"] / FULL.splits["train"]
    assert f"= {ratio:.1f}x, {'met' if ratio >= 10 else 'not met'}" in lines[-1]


def test_a_runs_environment_names_its_code_libraries_cpu_and_threads():
    import subprocess

    import timm
    import transformers

    from cskd_hf.synthetic.quickstart import run_environment

    environment = run_environment()
    repository = Path(__file__).resolve().parents[2]
    head = subprocess.run(["git", "-C", str(repository), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:  # a checkout (CI's clone is one): the commit that ran
        assert environment["commit"] == head.stdout.strip() and isinstance(environment["uncommitted_changes"], bool)
    assert (environment["torch"], environment["timm"], environment["transformers"]) == (
        torch.__version__, timm.__version__, transformers.__version__,
    )  # fmt: skip
    assert environment["cpu"] and environment["torch_threads"] == torch.get_num_threads()
    assert FULL.torch_threads == SMOKE.torch_threads == 2  # fixed by the plan, not by the machine's cores


def test_a_folders_finished_stages_are_kept_by_a_later_run_of_the_same_seed_and_plan(tmp_path):
    path, key = tmp_path / "stages.json", {"seed": 3, "plan": asdict(replace(SMOKE, full=False))}
    calls = []

    def stage(result):
        calls.append(result)
        return result

    first = Stages(record=StageRecord.start(path, key, reuse=False))
    assert first.run("CFA (teacher)", stage, {"content_accuracy": 0.5}) == {"content_accuracy": 0.5}
    first.run("SynthAVA", stage, object())  # not JSON: kept as None, for its caller to read from the folder
    first.run("CLIP zero-shot", stage, {"srcc": 0.4})

    later = Stages(record=StageRecord.start(path, key, reuse=True))
    assert later.run("CFA (teacher)", stage, "not called") == {"content_accuracy": 0.5}
    assert later.run("SynthAVA", stage, "not called") is None
    assert later.run("CLIP zero-shot", stage, {"srcc": 0.4}) == {"srcc": 0.4}  # always run: the report needs it
    assert later.run("CFA (student)", stage, 7) == 7  # not finished before
    assert len(calls) == 5 and "not called" not in calls
    assert later.reused == ["CFA (teacher)", "SynthAVA"]
    assert later.seconds["CFA (teacher)"] == first.seconds["CFA (teacher)"]  # the time it took then
    assert set(json.loads(path.read_text())["finished"]) == {
        "CFA (teacher)",
        "SynthAVA",
        "CLIP zero-shot",
        "CFA (student)",
    }

    # Another seed or plan is refused by name; without --reuse the folder's record starts again.
    with pytest.raises(ValueError, match=r"--reuse: the stages in .* are of another run \(it differs in seed"):
        StageRecord.start(path, key | {"seed": 4}, reuse=True)
    other_plan = {"seed": 3, "plan": asdict(replace(SMOKE, full=False, cfa_epochs=2))}
    with pytest.raises(ValueError, match=r"it differs in cfa_epochs"):
        StageRecord.start(path, other_plan, reuse=True)
    assert StageRecord.start(path, key, reuse=False).finished == {}
    assert json.loads(path.read_text())["finished"] == {}


def test_a_finished_run_without_a_stage_record_is_kept_from_its_results(tmp_path):
    """Runs of versions before `stages.json` (the recorded default seeds among them) can still be extended."""
    recorded = REPO / "benchmarks" / "results" / "seeds" / "default" / "seed-0" / "results.json"
    shutil.copy(recorded, tmp_path / "results.json")
    results = json.loads(recorded.read_text())
    key = {"seed": 0, "plan": asdict(DEFAULT)}  # the recorded seeds are of today's default plan
    record = StageRecord.start(tmp_path / "stages.json", key, reuse=True)
    assert list(record.finished) == list(results["stage_seconds"]) == planned_stages(DEFAULT)
    teacher = record.finished[f"content pretraining (teacher: {DEFAULT.teacher_architecture})"]
    assert teacher == {
        "seconds": results["stage_seconds"][f"content pretraining (teacher: {DEFAULT.teacher_architecture})"],
        "result": {"content_accuracy": results["content_pretraining_accuracy"][DEFAULT.teacher_architecture]},
        "environment": results["environment"],  # the code that made it, for the run that keeps it to report
    }
    assert record.finished["CFA (teacher)"]["result"] is None
    (tmp_path / "stages.json").unlink()  # the results alone again: a run of another seed cannot keep them
    with pytest.raises(ValueError, match=r"results.json are of another run \(it differs in seed"):
        StageRecord.start(tmp_path / "stages.json", key | {"seed": 1}, reuse=True)


def test_the_console_knows_every_stage_of_every_plan():
    """The time left is estimated from `STAGE_SECONDS`: it must hold every stage the plans run, under their names."""
    from cskd_hf.synthetic.quickstart import expected_stage_seconds

    for plan in (DEFAULT, FULL, SMOKE, SMOKE_FULL):
        expected = expected_stage_seconds(plan)
        assert list(expected) == planned_stages(plan) and all(seconds > 0 for seconds in expected.values())
        assert {"SynthAVA", "tiny CLIP", "evaluation on the test split"} <= expected.keys()


def test_the_default_plan_runs_the_papers_rows_and_the_premise_rows_and_full_adds_the_rest(tmp_path):
    from cskd_hf.synthetic.quickstart import FULL_BASELINE_ROWS, plan_rows

    assert plan_rows(DEFAULT) == plan_rows(SMOKE) == ROWS + PREMISE_ROWS
    assert plan_rows(FULL) == ROWS + VARIANT_ROWS + PREMISE_ROWS + FULL_BASELINE_ROWS
    default, full = trainer_arguments(DEFAULT, tmp_path), trainer_arguments(FULL, tmp_path)
    assert {name: full[name] for name in default} == default  # --full adds runs and changes none
    added = set(full) - set(default)
    assert {folder for _, folder in VARIANT_ROWS + FULL_BASELINE_ROWS} <= added
    assert {"CFA (ViT)", MULTI_TEACHER_CFA} <= added
    assert "attention diagnostic" in set(planned_stages(FULL)) - set(planned_stages(DEFAULT))
    assert FULL.splits == DEFAULT.splits  # one world: the premises hold for both


def test_every_fine_tuned_row_has_the_same_head_and_recipe_so_pretrained_weights_are_the_only_difference(tmp_path):
    planned = trainer_arguments(FULL, tmp_path)
    scorers = {name: args for name, args in planned.items() if not isinstance(args, CFAArguments)}
    assert {"nima-teacher", "nima-student", "clip-finetuned", "hou-joint-student", "cskd-student"} <= set(scorers)
    for name, args in scorers.items():
        assert args.head_hidden_sizes == [FULL.head_hidden_size], name
        decay = [min(FULL.lr_decay_epoch, args.num_epochs - 1)]  # a row shorter than the plan's decays before its end
        assert (args.head_dropout, args.lr_decay_epochs) == (FULL.head_dropout, decay), name
    for role, epochs in (("teacher", FULL.finetune_epochs), ("student", FULL.student_epochs)):
        nima, cfa = planned[f"nima-{role}"], planned[f"cfa-{role}-scorer"]
        assert (
            (nima.architecture, nima.num_epochs)
            == (cfa.architecture, cfa.num_epochs)
            == (
                FULL.architectures()[role],
                epochs,
            )
        )
        shared = ("batch_size", "image_size", "seed", "head_hidden_sizes", "lr_decay_epochs")
        assert all(getattr(nima, field) == getattr(cfa, field) for field in shared)
        # the learning rate is each row's own choice from the one grid (fair tuning), never a hand-set difference
        for args in (nima, cfa):
            assert args.learning_rate == FULL.row_learning_rates[Path(args.output_dir).name]
        assert nima.backbone_checkpoint_path.endswith(f"content-pretrained-{FULL.architectures()[role]}.safetensors")
        assert cfa.model.endswith(f"cfa-{role}")  # the weights: content-pretrained against CLIP-aligned


def test_a_rows_learning_rate_from_the_grid_applies_to_that_row_and_its_variant_only(tmp_path):
    plan = replace(FULL, row_learning_rates={"nima-teacher": 3e-4, "cskd-student": 1e-4})
    planned = trainer_arguments(plan, tmp_path)
    assert planned["nima-teacher"].learning_rate == 3e-4 and planned["cskd-student"].learning_rate == 1e-4
    assert planned["cskd-student-live"].learning_rate == 1e-4  # a variant differs from its row in its one choice
    chosen = {*plan.row_learning_rates, "cskd-student-live"}
    others = {name: args.learning_rate for name, args in planned.items() if name not in chosen}
    assert set(others.values()) == {plan.learning_rate}  # CFA and the other rows keep the plan's


def test_a_row_shorter_than_the_plans_decay_epoch_decays_before_its_last_epoch_and_unknown_rows_are_refused(tmp_path):
    planned = trainer_arguments(DEFAULT, tmp_path)  # teachers 10 epochs, decay at 8; students 4
    assert planned["nima-teacher"].lr_decay_epochs == [DEFAULT.lr_decay_epoch]
    assert planned["nima-student"].lr_decay_epochs == planned["cskd-student"].lr_decay_epochs == [3]
    with pytest.raises(ValueError, match="cfa-teacher"):  # CFA is no fine-tuned row
        trainer_arguments(replace(FULL, row_learning_rates={"cfa-teacher": 1e-4}), tmp_path)
    with pytest.raises(ValueError, match="cskd-student-live"):  # a variant takes its row's rate
        trainer_arguments(replace(FULL, row_learning_rates={"cskd-student-live": 1e-4}), tmp_path)


def test_a_default_runs_report_names_its_rows_rates_and_full_without_a_fig_3_section():
    from cskd_hf.synthetic.quickstart import results_markdown

    plan = replace(DEFAULT, row_learning_rates={"nima-teacher": 3e-4})
    summary = {
        "seed": 0, "smoke": False, "full": False, "plan": asdict(plan), "attention": {}, "attention_change": {},
        "synthava_train_votes": {"mos_mean": 5.4, "mos_std": 0.7, "vote_std": 1.4, "min_votes": 100, "max_votes": 250},
        "tiny_clip_retrieval": {"pairs": 200, "recall@1": 0.2, "chance@1": 0.005, "recall@5": 0.5, "chance@5": 0.025},
        "content_pretraining_accuracy": {"resnet10t": 0.9}, "stage_seconds": {"SynthAVA": 30.0}, "total_seconds": 30.0,
    }  # fmt: skip
    markdown = results_markdown(summary, "TABLE")
    assert "# CSKD quickstart on SynthAVA (seed 0)\n" in markdown and "TABLE" in markdown
    assert "## Attention before and after CFA" not in markdown and "`cskd quickstart --full` adds" in markdown
    assert "nima-teacher 0.0003; the others 0.001" in markdown
    full = results_markdown(summary | {"full": True, "plan": asdict(replace(plan, full=True))}, "TABLE")
    assert "(seed 0, full)" in full and "SKD with the live teacher" in full and "## Attention" not in full  # none ran
