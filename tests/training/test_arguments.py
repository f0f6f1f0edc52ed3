"""`cskd_hf.training.arguments`: run options as flags or as a YAML / JSON file (the same parser, and a bad file is
named with the bad option), and timm's model arguments from the flag or the dataclass to the backbone."""

import json

import pytest
import torch

from cskd_hf.training import cfa, skd, supervised
from cskd_hf.training.models import scorer_from

FLAGS = ["--dataset", "ava:/data/AVA", "--output_dir", "out", "--batch_size", "16", "--lr_decay_epochs", "5", "9"]
REQUIRED = "dataset: ava:/data/AVA\noutput_dir: out\n"
OPTIONS = {"dataset": "ava:/data/AVA", "output_dir": "out", "batch_size": 16, "lr_decay_epochs": [5, 9]}


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_file_gives_what_the_same_flags_give(tmp_path, suffix):
    path = tmp_path / f"run{suffix}"
    path.write_text(json.dumps({**OPTIONS, "mixed_precision": None}))  # JSON is YAML too
    from_file = supervised.parse_arguments(supervised.FinetuneArguments, [str(path)])
    assert from_file == supervised.parse_arguments(supervised.FinetuneArguments, FLAGS)
    assert from_file.batch_size == 16 and from_file.lr_decay_epochs == [5, 9]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (REQUIRED + "batch_size: eight", "argument --batch_size/--batch-size: invalid int value: 'eight'"),
        (REQUIRED + "learning_rate: fast", "invalid float value: 'fast'"),
        (REQUIRED + "batch_sise: 8", "unknown option(s) batch_sise for FinetuneArguments"),
        (REQUIRED + "mu: 15", "unknown option(s) mu for FinetuneArguments"),  # SKD's option, not fine-tuning's
        ("- batch_size\n- 8", "expected a mapping of option names to values, got list"),
        ("dataset: ava:/data/AVA\nbatch_size: 8", "missing required option(s) output_dir"),
        (REQUIRED + "batch_size: {value: 8}", "option batch_size must be a value or a list of values"),
    ],
)
def test_a_bad_file_is_named_with_the_option(tmp_path, content, message):
    path = tmp_path / "run.yaml"
    path.write_text(content)
    with pytest.raises(ValueError, match=f"{path}: .*" + message.replace("(", r"\(").replace(")", r"\)")):
        supervised.parse_arguments(supervised.FinetuneArguments, [str(path)])


def test_skd_options_from_a_file(tmp_path):
    path = tmp_path / "skd.yaml"
    path.write_text("dataset: ava:/data/AVA\noutput_dir: out\nteacher: t\nunlabeled: [a, b]\nmu: 15\nbeta: 15.0\n")
    args = skd.parse_arguments(skd.SKDArguments, [str(path)])
    assert (args.unlabeled, args.mu, args.beta) == (["a", "b"], 15, 15.0)


def test_values_no_flag_carries_are_set_as_written(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(
        REQUIRED + "lr_decay_epochs: []\nreport_to: null\nresume_from_checkpoint: false\nweight_decay: -1.0e-5\n"
    )
    args = supervised.parse_arguments(supervised.FinetuneArguments, [str(path)])
    assert args.lr_decay_epochs == []  # no decay; a flag needs at least one value
    assert args.report_to is None and args.resume_from_checkpoint is False
    assert args.weight_decay == -1e-5  # passed as --weight_decay=-1e-05, not read as an option


def test_a_flag_set_false_in_a_file(tmp_path):
    path = tmp_path / "cfa.yaml"
    path.write_text("teacher: [clip]\nunlabeled: [images]\noutput_dir: out\ntrain_augmentation: false\n")
    assert cfa.parse_arguments(cfa.CFAArguments, [str(path)]).train_augmentation is False


def test_timm_model_args_reach_the_backbone_from_the_flag_or_the_dataclass(tmp_path):
    flags = ["--unlabeled", "folder:/data/unlabeled", "--output_dir", "out", "--architecture", "test_vit"]
    flags += ["--image_size", "64", "--model_args", '{"patch_size": 8, "num_heads": 4}']
    from_flags = cfa.parse_arguments(cfa.CFAArguments, flags)
    assert from_flags.model_args == {"patch_size": 8, "num_heads": 4}
    direct = cfa.CFAArguments(
        unlabeled=["folder:/data/unlabeled"],
        output_dir="out",
        architecture="test_vit",
        image_size=64,
        model_args={"patch_size": 8, "num_heads": 4},
    )
    assert direct == from_flags
    assert cfa.CFAArguments(unlabeled=["folder:/data/unlabeled"], output_dir="out", model_args=None).model_args == {}
    model = cfa.alignment_model(from_flags, projection_dim=32)
    assert model.config.model_args == {"patch_size": 8, "num_heads": 4}
    assert model.backbone.patch_embed.patch_size == (8, 8) and model.backbone.patch_embed.grid_size == (8, 8)
    assert model.backbone.blocks[0].attn.num_heads == 4
    # and a scorer (fine-tuning, SKD's student) keeps them through save and load
    finetune = supervised.parse_arguments(supervised.FinetuneArguments, [*FLAGS, "--architecture", "test_vit"])
    assert finetune.model_args == {}
    finetune.model_args, finetune.image_size = {"patch_size": 8}, 64
    scorer, processor = scorer_from(finetune, [float(score) for score in range(1, 11)])
    scorer.save_pretrained(tmp_path / "scorer")
    reloaded = type(scorer).from_pretrained(tmp_path / "scorer")
    assert reloaded.backbone.patch_embed.patch_size == (8, 8) and reloaded.config.model_args == {"patch_size": 8}
    assert processor(torch.zeros(3, 100, 80))["pixel_values"].shape[-2:] == (64, 64)


@pytest.mark.parametrize(
    ("value", "message"),
    [("{patch_size: 8}", "--model_args: not JSON"), ("[8]", "--model_args: a JSON object of keyword arguments")],
)
def test_bad_model_args_name_the_flag(value, message):
    with pytest.raises(ValueError, match=message):
        supervised.parse_arguments(supervised.FinetuneArguments, [*FLAGS, "--model_args", value])
