"""The quickstart builds each trainer's argument dataclass directly: it must equal what the command line the quickstart
used to pass parsed into, so that every run, and every result, stays as it was."""

import json
from pathlib import Path

import pytest

from cskd_hf.synthetic.quickstart import (
    FULL,
    MULTI_TEACHER_CFA,
    SMOKE,
    QuickstartPlan,
    trainer_arguments,
)
from cskd_hf.training.arguments import parse_arguments
from cskd_hf.training.cfa import CFAArguments
from cskd_hf.training.skd import SKDArguments
from cskd_hf.training.supervised import FinetuneArguments


def command_lines(plan: QuickstartPlan, out_dir, seed: int) -> dict[str, tuple[type, list[str]]]:
    """Each trainer's arguments class and argv, by stage name in the order they ran, as the quickstart built them
    before it built dataclasses (commit b71d30d), copied from it."""
    data_dir, models, cache = out_dir / "synthava", out_dir / "models", out_dir / "cache"
    source = f"parquet:{data_dir / 'data' / 'unlabeled-*.parquet'}"
    architecture = {"teacher": plan.teacher_architecture, "student": plan.student_architecture}
    imagenet = {role: models / f"content-pretrained-{arch}.safetensors" for role, arch in architecture.items()}
    common = [
        "--seed", str(seed), "--image_size", str(plan.image_size), "--batch_size", str(plan.batch_size),
        "--learning_rate", str(plan.learning_rate), "--num_workers", str(plan.num_workers), "--report_to", "none",
        "--checkpointing_steps", "100000", "--checkpoints_total_limit", "1",
    ]  # fmt: skip
    runs = {}
    for role in ("teacher", "student"):
        runs[f"CFA ({role})"] = (CFAArguments, [
            "--teacher", str(models / "tiny-clip"), "--unlabeled", source, "--architecture", architecture[role],
            "--backbone_checkpoint_path", str(imagenet[role]), "--num_epochs", str(plan.cfa_epochs),
            "--lr_decay_epochs", str(plan.cfa_epochs),
            "--output_dir", str(models / f"cfa-{role}"), *common,
        ])  # fmt: skip

    # Changes since: CSKD's rows (CFA, KD, SKD, multi-teacher CFA) have the MLP head; Hou et al.'s joint mode; CFA
    # with the live teacher, and from the cache as a variant; SKD with mu = 15 from the teacher cache; the Fig. 3 ViT.
    mlp_head = ["--head_hidden_sizes", str(plan.head_hidden_size)]

    def finetune(name: str, role: str, start: list[str], epochs: int, head: list[str] = ()):
        runs[name] = (FinetuneArguments, [
            "--dataset", str(data_dir), "--architecture", architecture[role], *start, "--num_epochs", str(epochs),
            "--lr_decay_epochs", str(plan.lr_decay_epoch), "--head_dropout", str(plan.head_dropout), *head,
            "--output_dir", str(models / name), *common,
        ])  # fmt: skip

    finetune("nima-teacher", "teacher", ["--backbone_checkpoint_path", str(imagenet["teacher"])], plan.finetune_epochs)
    finetune("cfa-teacher-scorer", "teacher", ["--model", str(models / "cfa-teacher")], plan.finetune_epochs, mlp_head)
    finetune("nima-student", "student", ["--backbone_checkpoint_path", str(imagenet["student"])], plan.student_epochs)
    finetune("cfa-student-scorer", "student", ["--model", str(models / "cfa-student")], plan.student_epochs, mlp_head)
    distil = [
        "--dataset", str(data_dir), "--teacher", str(models / "cfa-teacher-scorer"),
        "--model", str(models / "cfa-student"), "--num_epochs", str(plan.student_epochs),
        "--lr_decay_epochs", str(plan.lr_decay_epoch), "--head_dropout", str(plan.head_dropout), *mlp_head,
        "--beta", str(plan.beta), *common,
    ]  # fmt: skip
    runs["kd-student"] = (SKDArguments, [*distil, "--output_dir", str(models / "kd-student")])
    runs["cskd-student"] = (SKDArguments, [
        *distil, "--unlabeled", source, "--mu", str(plan.mu), "--teacher_cache", str(cache / "skd-teacher"),
        "--output_dir", str(models / "cskd-student"),
    ])  # fmt: skip
    runs["CFA (student, cached targets)"] = (CFAArguments, [
        "--teacher", str(models / "tiny-clip"), "--unlabeled", source, "--architecture", architecture["student"],
        "--backbone_checkpoint_path", str(imagenet["student"]), "--num_epochs", str(plan.cfa_epochs),
        "--lr_decay_epochs", str(plan.cfa_epochs), "--teacher_cache", str(cache / "student"),
        "--output_dir", str(models / "cfa-student-cached"), *common,
    ])  # fmt: skip
    finetune(
        "cfa-student-cached-scorer", "student", ["--model", str(models / "cfa-student-cached")], plan.student_epochs,
        mlp_head,
    )  # fmt: skip
    runs["CFA (ViT)"] = (CFAArguments, [
        "--teacher", str(models / "tiny-clip"), "--unlabeled", source, "--architecture", plan.vit_architecture,
        "--backbone_checkpoint_path", str(models / f"content-pretrained-{plan.vit_architecture}.safetensors"),
        "--num_epochs", str(plan.cfa_epochs), "--lr_decay_epochs", str(plan.cfa_epochs),
        "--output_dir", str(models / "cfa-vit"), "--model_args", json.dumps(plan.vit_model_args), *common,
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
        "--output_dir", str(models / "multi-teacher-cfa-student"), *common,
    ])  # fmt: skip
    finetune(
        "multi-teacher-cfa-student-scorer",
        "student",
        ["--model", str(models / "multi-teacher-cfa-student")],
        plan.student_epochs,
        mlp_head,
    )
    classifier = f"timm:{plan.teacher_architecture}@{imagenet['teacher']}"
    hou = ["--backbone_checkpoint_path", str(imagenet["student"]), "--alignment_teacher", classifier]
    finetune("hou-joint-student", "student", hou, plan.student_epochs)
    return runs


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("plan", [FULL, SMOKE], ids=["full", "smoke"])
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
    planned = trainer_arguments(SMOKE, tmp_path)
    multi, single = planned[MULTI_TEACHER_CFA], planned["CFA (student, cached targets)"]
    assert multi.teacher[0] == single.teacher[0]  # the tiny CLIP
    assert multi.cache_dir(0) == single.cache_dir(0)  # its cache, named directly: no link
    assert multi.cache_dir(1) != single.cache_dir(0) and Path(multi.cache_dir(1)).name == "teacher1"
    order = list(planned)
    assert order.index("CFA (student, cached targets)") < order.index(MULTI_TEACHER_CFA)


@pytest.mark.parametrize("plan", [FULL, SMOKE], ids=["full", "smoke"])
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
    skd = planned["cskd-student"]
    assert (skd.mu, skd.beta) == (15, 15.0) and skd.teacher_cache is not None
    vit = planned["CFA (ViT)"]
    assert vit.architecture == "test_vit" and vit.model_args["patch_size"] == 8 and vit.teacher_cache is None
