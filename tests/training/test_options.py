"""Run options as flags or as a YAML / JSON file: the same parser, and a bad file is named with the bad option."""

import json

import pytest

from cskd_hf.training import cfa, skd, supervised

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
