"""`CSKDConfig`: its defaults, bins and labels, the checks of its fields (at construction and before saving), the
saved file, and the scalar head over the bins."""

import json

import pytest

from cskd_hf import CSKDConfig


def test_defaults_are_ava_with_mobilenetv2():
    config = CSKDConfig()
    assert config.architecture == "mobilenetv2_100"
    assert config.num_bins == 10
    assert config.bin_scores == [float(s) for s in range(1, 11)]
    assert config.id2label[0] == "1" and config.id2label[9] == "10"
    assert config.backbone_pretrained is False


def test_para_bins_and_labels():
    bins = [1.0 + 0.5 * i for i in range(9)]
    config = CSKDConfig(num_bins=9, bin_scores=bins)
    assert config.num_labels == 9
    assert config.id2label[1] == "1.5"


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"num_bins": 1}, "num_bins"),
        ({"num_bins": 3, "bin_scores": [1, 2]}, "bin_scores"),
        ({"num_bins": 3, "bin_scores": [1, 3, 2]}, "bin_scores"),
        ({"head_dropout": 1.0}, "head_dropout"),
        ({"head_hidden_sizes": [0]}, "head_hidden_sizes"),
        ({"image_size": 0}, "image_size"),
        ({"projection_dim": -1}, "projection_dim"),
        ({"emd_r": 0}, "emd_r"),
        ({"architecture": ""}, "architecture"),
        ({"score_head": "ordinal"}, "score_head"),
        ({"scalar_spread": 0}, "scalar_spread"),
    ],
)
def test_bad_values_raise_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        CSKDConfig(**kwargs)


def test_round_trip_and_bin_override_from_pretrained(tmp_path):
    CSKDConfig(architecture="test_vit", head_hidden_sizes=[8], projection_dim=32).save_pretrained(tmp_path)
    loaded = CSKDConfig.from_pretrained(tmp_path)
    assert loaded.architecture == "test_vit" and loaded.head_hidden_sizes == [8] and loaded.projection_dim == 32

    # Phase II on PARA from a checkpoint saved with AVA's bins: labels follow the new bins.
    para = CSKDConfig.from_pretrained(tmp_path, num_bins=9, bin_scores=[1 + 0.5 * i for i in range(9)])
    assert para.num_bins == 9 and para.num_labels == 9 and para.id2label[8] == "5"
    # A new bin count alone gives the default bins 1..d (AADB's five ratings), not a mismatch with the saved ten.
    aadb = CSKDConfig.from_pretrained(tmp_path, num_bins=5)
    assert aadb.bin_scores == [1.0, 2.0, 3.0, 4.0, 5.0] and aadb.num_labels == 5
    with pytest.raises(ValueError, match="bin_scores"):
        CSKDConfig.from_pretrained(tmp_path, bin_scores=[1.0, 2.0])


def test_saved_config_holds_no_path_of_this_machine(tmp_path, random_clip_dir):
    checkpoint = tmp_path / "backbone.safetensors"
    config = CSKDConfig(architecture="test_resnet", image_size=64, backbone_checkpoint_path=str(checkpoint))
    assert config.backbone_checkpoint_path == str(checkpoint)  # used by `from_config` on this machine
    config.save_pretrained(tmp_path / "saved")
    saved = (tmp_path / "saved" / "config.json").read_text()
    assert str(tmp_path) not in saved and "backbone_checkpoint_path" not in saved

    clip = CSKDConfig.for_clip(str(random_clip_dir))
    assert clip.architecture == random_clip_dir.name
    assert str(random_clip_dir) not in clip.to_json_string()


def test_one_label_means_the_scalar_head_over_the_bins():
    """transformers' one-label convention: regression. The scalar head's one logit is the score; its distribution
    keeps its bins, and `id2label` names the one label (ConfigTester checks `len(id2label) == num_labels`)."""
    config = CSKDConfig(num_labels=1)
    assert (config.score_head, config.num_labels, config.num_bins) == ("scalar", 1, 10)
    assert config.id2label == {0: "score"} and config.label2id == {"score": 0}
    assert CSKDConfig(score_head="scalar", bin_scores=[1, 2, 3]).num_labels == 1

    para = CSKDConfig(num_bins=9, bin_scores=[1 + 0.5 * i for i in range(9)])
    para.num_labels = 1  # re-headed as a regression model: the bins stay PARA's
    assert (para.score_head, para.num_labels, para.num_bins, para.bin_scores[1]) == ("scalar", 1, 9, 1.5)
    para.num_labels = 9  # the same number of bins again keeps their scores
    assert (para.score_head, para.num_labels, para.bin_scores[1], para.id2label[1]) == ("distribution", 9, 1.5, "1.5")
    para.num_labels = 4
    assert para.bin_scores == [1.0, 2.0, 3.0, 4.0] and len(para.id2label) == 4

    with pytest.raises(ValueError, match="one label"):
        CSKDConfig(score_head="scalar", num_labels=3)
    with pytest.raises(ValueError, match="num_labels"):
        CSKDConfig(num_labels=0)


def test_a_scalar_config_saved_with_the_bins_as_labels_loads_as_one_label(tmp_path):
    config = CSKDConfig(score_head="scalar")
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    saved["id2label"] = {str(i): str(i + 1) for i in range(10)}  # as configs were saved before
    saved["label2id"] = {str(i + 1): i for i in range(10)}
    (tmp_path / "config.json").write_text(json.dumps(saved))
    loaded = CSKDConfig.from_pretrained(tmp_path)
    assert (loaded.num_labels, loaded.num_bins, loaded.id2label) == (1, 10, {0: "score"})
    # `num_labels` on loading re-heads either way, as transformers' recipe does
    assert CSKDConfig.from_pretrained(tmp_path, num_labels=5).bin_scores == [1.0, 2.0, 3.0, 4.0, 5.0]
    CSKDConfig(bin_scores=[2, 4, 6]).save_pretrained(tmp_path / "distribution")
    regression = CSKDConfig.from_pretrained(tmp_path / "distribution", num_labels=1)
    assert (regression.score_head, regression.bin_scores) == ("scalar", [2.0, 4.0, 6.0])


def test_problem_types_of_a_one_label_model():
    """Bin indices index the bins, not the logits: a one-label model takes them (transformers' own config refuses
    single-label classification with one label, for its cross-entropy heads). Multi-label is refused, saying why."""
    assert CSKDConfig(num_labels=1, problem_type="single_label_classification").num_labels == 1
    assert CSKDConfig(num_labels=1, problem_type="regression").problem_type == "regression"
    with pytest.raises(ValueError, match="ordered and their probabilities sum to one"):
        CSKDConfig(problem_type="multi_label_classification")


def test_a_field_changed_to_a_bad_value_is_refused_when_saving(tmp_path):
    """`validate` holds every check; transformers runs it before writing `config.json`, as we do at construction."""
    config = CSKDConfig(head_hidden_sizes=[8])
    config.head_dropout = 1.5
    with pytest.raises(ValueError, match="head_dropout"):
        config.save_pretrained(tmp_path)
    assert not (tmp_path / "config.json").exists()
    config.head_dropout = 0.5
    config.problem_type = "multi_label_classification"
    with pytest.raises(ValueError, match="bins are ordered"):
        config.validate()


def test_num_labels_on_loading_is_checked_and_keeps_a_scalar_heads_bins(tmp_path):
    bins = [1 + 0.5 * i for i in range(9)]
    CSKDConfig(score_head="scalar", bin_scores=bins).save_pretrained(tmp_path)
    distribution = CSKDConfig.from_pretrained(tmp_path, num_labels=9)  # as `config.num_labels = 9` does
    assert (distribution.score_head, distribution.bin_scores) == ("distribution", bins)
    with pytest.raises(ValueError, match="num_labels"):
        CSKDConfig.from_pretrained(tmp_path, num_labels=0)
    with pytest.raises(ValueError, match="problem_type"):
        CSKDConfig(problem_type="ordinal_regression")
