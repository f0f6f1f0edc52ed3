"""The CSKD models (`CSKDModel`, `CSKDForAestheticScoring`, `CSKDForFeatureAlignment`): outputs and losses, saving
and loading (no pickle, no download, `trust_remote_code` without cskd_hf), backbones (timm and CLIP towers) and
their hidden states, scalar and one-label heads, and transformers' Trainer."""

import copy
import pickle
import subprocess
import sys
import textwrap

import pytest
import timm
import torch
from safetensors.torch import save_file
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
)

from cskd_hf import (
    CSKDConfig,
    CSKDForAestheticScoring,
    CSKDForFeatureAlignment,
    CSKDImageProcessor,
    CSKDModel,
)
from cskd_hf.cli import main
from cskd_hf.losses import earth_movers_distance
from cskd_hf.models.cskd import MismatchedWeightsError
from tests.helpers import TINY_IMAGE_SIZE, same_tensors, tiny_config, write_hostile_pickle

# CNN, ViT, ConvNeXt, a model whose pooled size differs from num_features, and one with non-persistent buffers.
TINY_ARCHITECTURES = ["test_resnet", "test_vit", "test_convnext", "test_mambaout", "test_vit_relpos"]


def pixels(batch_size: int = 2, size: int = TINY_IMAGE_SIZE, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch_size, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("architecture", TINY_ARCHITECTURES)
def test_scoring_outputs_and_save_load_round_trip(architecture, tmp_path):
    torch.manual_seed(0)
    model = CSKDForAestheticScoring(tiny_config(architecture, head_hidden_sizes=[16])).eval()
    x = pixels()
    with torch.no_grad():
        out = model(x)
    assert out.logits.shape == out.probabilities.shape == (2, 10)
    torch.testing.assert_close(out.probabilities.sum(-1), torch.ones(2))
    assert ((out.mean_score >= 1) & (out.mean_score <= 10)).all()
    expected_mean = (out.probabilities * torch.arange(1.0, 11.0)).sum(-1)
    torch.testing.assert_close(out.mean_score, expected_mean)
    expected_std = (out.probabilities * (torch.arange(1.0, 11.0) - expected_mean[:, None]) ** 2).sum(-1).sqrt()
    torch.testing.assert_close(out.std_score, expected_std)
    assert out.loss is None

    model.save_pretrained(tmp_path)
    loaded = CSKDForAestheticScoring.from_pretrained(tmp_path).eval()
    assert same_tensors(model.state_dict(), loaded.state_dict())  # incl. non-persistent buffers
    with torch.no_grad():
        assert torch.equal(loaded(x).logits, out.logits)


@pytest.mark.parametrize("architecture", ["test_resnet", "test_mambaout"])
def test_pooled_features_equal_raw_timm(architecture):
    model = CSKDModel(tiny_config(architecture)).eval()
    reference = timm.create_model(architecture, pretrained=False, num_classes=0)
    reference.load_state_dict(model.backbone.state_dict())
    reference.eval()
    x = pixels()
    with torch.no_grad():
        expected = reference.forward_head(reference.forward_features(x), pre_logits=True)
        assert torch.equal(model(x).pooler_output, expected)
        assert torch.equal(model(x).pooler_output, reference(x))  # num_classes=0: the model's own pooled output
    assert model(x).pooler_output.shape[-1] == model.feature_size


def test_real_mobilenetv2_architecture_round_trip(tmp_path):
    config = CSKDConfig(architecture="mobilenetv2_100", image_size=96)
    model = CSKDForAestheticScoring(config).eval()
    assert model.feature_size == 1280
    x = pixels(size=96)
    with torch.no_grad():
        expected = model(x).probabilities
    model.save_pretrained(tmp_path)
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    assert same_tensors(model.state_dict(), loaded.state_dict())
    with torch.no_grad():
        assert torch.equal(loaded(x).probabilities, expected)


def test_labels_give_the_mean_emd_loss():
    model = CSKDForAestheticScoring(tiny_config(head_dropout=0.0)).eval()
    labels = torch.tensor([[0.0, 0.0, 0.1, 0.2, 0.4, 0.2, 0.1, 0.0, 0.0, 0.0], [0.1] * 10])
    out = model(pixels(), labels=labels)
    torch.testing.assert_close(out.loss, earth_movers_distance(out.probabilities, labels).mean())
    out.loss.backward()
    assert model.head.layers[-1].weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.backbone.parameters())

    with pytest.raises(ValueError, match="num_bins"):
        model(pixels(), labels=torch.ones(2, 9) / 9)


def test_return_dict_false_gives_the_same_tensors_in_order():
    model = CSKDForAestheticScoring(tiny_config()).eval()
    labels = torch.full((2, 10), 0.1)
    with torch.no_grad():
        as_dict = model(pixels(), labels=labels)
        as_tuple = model(pixels(), labels=labels, return_dict=False)
    assert len(as_tuple) == 6
    for got, expected in zip(as_tuple, as_dict.to_tuple()):
        assert torch.equal(got, expected)


def test_para_bins_give_scores_on_para_scale():
    bins = [1.0 + 0.5 * i for i in range(9)]
    model = CSKDForAestheticScoring(tiny_config(num_bins=9, bin_scores=bins)).eval()
    with torch.no_grad():
        out = model(pixels())
    assert out.probabilities.shape == (2, 9)
    assert ((out.mean_score >= 1) & (out.mean_score <= 5)).all()


def test_alignment_model_loss_and_phase_two_keeps_the_aligned_backbone(tmp_path):
    torch.manual_seed(0)
    aligned = CSKDForFeatureAlignment(tiny_config(projection_dim=24, projector_hidden_size=32))
    teacher_embeds = torch.randn(2, 24)
    out = aligned(pixels(), teacher_embeds=teacher_embeds)
    assert out.embeddings.shape == (2, 24)
    expected = 1 - torch.nn.functional.cosine_similarity(teacher_embeds, out.embeddings, dim=-1)
    torch.testing.assert_close(out.loss, expected.mean())
    aligned.save_pretrained(tmp_path)

    scorer = CSKDForAestheticScoring.from_pretrained(tmp_path)
    assert same_tensors(
        aligned.backbone.state_dict(), scorer.backbone.state_dict()
    )  # bit-identical: _init_weights left it alone
    head = scorer.head.layers[-1]
    assert torch.isfinite(head.weight).all() and torch.all(head.bias == 0)
    assert 0.01 < head.weight.std().item() < 0.03  # the config's initializer_range (0.02), not left uninitialised
    assert not hasattr(scorer, "projector")


def test_alignment_model_needs_a_projection_dim():
    with pytest.raises(ValueError, match="projection_dim"):
        CSKDForFeatureAlignment(tiny_config())


def test_auto_classes_after_import(tmp_path):
    model = CSKDForAestheticScoring(tiny_config())
    model.save_pretrained(tmp_path)
    CSKDImageProcessor.from_model_config(model.config).save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), CSKDConfig)
    assert type(AutoModel.from_pretrained(tmp_path)) is CSKDModel
    assert type(AutoModelForImageClassification.from_pretrained(tmp_path)) is CSKDForAestheticScoring
    assert type(AutoImageProcessor.from_pretrained(tmp_path)) is CSKDImageProcessor
    assert isinstance(AutoModelForImageClassification.from_config(tiny_config()), CSKDForAestheticScoring)


def _timm_checkpoint(tmp_path, architecture="test_resnet"):
    """A timm classifier checkpoint on disk (with its classifier, as timm saves them)."""
    torch.manual_seed(123)
    source = timm.create_model(architecture, pretrained=False, num_classes=7)
    path = tmp_path / "imagenet.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    return source, path


def test_from_config_loads_a_local_backbone_checkpoint_and_plain_init_does_not(tmp_path):
    source, path = _timm_checkpoint(tmp_path)
    config = tiny_config(backbone_checkpoint_path=str(path))
    loaded = CSKDForAestheticScoring.from_config(config)
    expected = {k: v for k, v in source.state_dict().items() if not k.startswith("fc.")}
    assert same_tensors(loaded.backbone.state_dict(), expected)
    assert not torch.equal(CSKDForAestheticScoring(config).backbone.conv1[0].weight, source.conv1[0].weight)


def test_no_pickle_runs_from_a_backbone_checkpoint_or_a_model_folder(tmp_path, tiny_scorer_dir):
    marker = tmp_path / "code-ran"
    hostile = write_hostile_pickle(tmp_path / "backbone.pth", marker)
    with pytest.raises(RuntimeError, match="weights_only=True blocked"):  # timm's words
        CSKDForAestheticScoring.from_config(tiny_config(backbone_checkpoint_path=str(hostile)))
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text((tiny_scorer_dir / "config.json").read_text())
    write_hostile_pickle(folder / "pytorch_model.bin", marker)  # the old weights format, without safetensors
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        CSKDForAestheticScoring.from_pretrained(folder)
    assert not marker.exists()
    torch.load(hostile, weights_only=False)  # the payload is live: what a pickle-loading path would have done
    assert marker.exists()


def test_from_pretrained_never_fetches_backbone_weights(tmp_path, monkeypatch):
    model = CSKDForAestheticScoring(tiny_config(backbone_pretrained=True))  # as saved after a run that downloaded
    model.save_pretrained(tmp_path)

    create_model = timm.create_model

    def no_pretrained(*args, **kwargs):
        assert not kwargs.get("pretrained"), "from_pretrained asked timm for pretrained weights"
        return create_model(*args, **kwargs)

    monkeypatch.setattr(timm, "create_model", no_pretrained)
    loaded = CSKDForAestheticScoring.from_pretrained(tmp_path)
    assert same_tensors(model.state_dict(), loaded.state_dict())
    with pytest.raises(AssertionError, match="pretrained"):
        CSKDForAestheticScoring.from_config(tiny_config(backbone_pretrained=True))  # this is the download path


def test_trust_remote_code_loads_without_cskd_hf(tmp_path, tiny_scorer_dir):
    """A user without the package: the saved folder carries the model code, loaded with trust_remote_code=True."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["cskd_hf"] = None  # any import of the package now fails
        import torch
        from transformers import AutoImageProcessor, AutoModel, AutoModelForImageClassification
        from PIL import Image
        model = AutoModelForImageClassification.from_pretrained({str(tiny_scorer_dir)!r}, trust_remote_code=True)
        processor = AutoImageProcessor.from_pretrained({str(tiny_scorer_dir)!r}, trust_remote_code=True)
        base = AutoModel.from_pretrained({str(tiny_scorer_dir)!r}, trust_remote_code=True)
        assert "cskd_hf" not in type(model).__module__, type(model).__module__
        image = Image.new("RGB", (90, 70), (30, 120, 200))
        with torch.no_grad():
            out = model.eval()(**processor(image))
        print(type(model).__name__, type(base).__name__, type(processor).__name__, repr(out.mean_score.item()))
        """
    )
    env = {"HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    classes_and_score = result.stdout.strip().splitlines()[-1].split()
    assert classes_and_score[:3] == ["CSKDForAestheticScoring", "CSKDModel", "CSKDImageProcessor"]

    model = AutoModelForImageClassification.from_pretrained(tiny_scorer_dir).eval()
    processor = AutoImageProcessor.from_pretrained(tiny_scorer_dir)
    from PIL import Image

    with torch.no_grad():
        local_score = model(**processor(Image.new("RGB", (90, 70), (30, 120, 200)))).mean_score.item()
    assert float(classes_and_score[3]) == local_score


# Conformance with what transformers' Auto classes promise (issue 13): each test is a symptom a user hit.


@pytest.mark.parametrize("architecture", ["test_resnet", "test_vit"])
def test_missing_backbone_weights_are_initialised_as_timm_would(architecture):
    config = tiny_config(architecture)
    model = CSKDForAestheticScoring.from_pretrained(None, config=config, state_dict={}).eval()
    fresh = timm.create_model(
        architecture, pretrained=False, num_classes=0, **({"img_size": 64} if "vit" in architecture else {})
    )
    for name, tensor in model.backbone.state_dict().items():
        assert torch.isfinite(tensor.float()).all(), name
        if name.endswith(("running_mean", "running_var", "num_batches_tracked")):
            assert torch.equal(tensor, fresh.state_dict()[name]), name  # zeros / ones, as timm builds them
    with torch.no_grad():
        assert torch.isfinite(model(pixels()).logits).all()


def test_resized_vit_keeps_its_loaded_blocks_and_initialises_the_new_position_embedding(tmp_path):
    source = CSKDForAestheticScoring(CSKDConfig(architecture="test_vit", image_size=32))
    source.save_pretrained(tmp_path)
    resized = CSKDForAestheticScoring.from_pretrained(tmp_path, image_size=64, ignore_mismatched_sizes=True)
    assert resized.backbone.pos_embed.shape[1] > source.backbone.pos_embed.shape[1]
    assert torch.isfinite(resized.backbone.pos_embed).all() and resized.backbone.pos_embed.abs().max() > 0
    loaded = {k: v for k, v in resized.backbone.state_dict().items() if k != "pos_embed"}
    assert same_tensors(loaded, {k: v for k, v in source.backbone.state_dict().items() if k != "pos_embed"})
    with torch.no_grad():
        assert torch.isfinite(resized(pixels(size=64)).logits).all()


@pytest.mark.parametrize("model_class", [CSKDModel, CSKDForAestheticScoring])
def test_hidden_states_from_the_argument_or_the_config(model_class):
    model = model_class(tiny_config("test_resnet")).eval()
    with torch.no_grad():
        plain = model(pixels())
        out = model(pixels(), output_hidden_states=True)
        last_two = model(pixels(), output_hidden_states=[-2, -1])
    assert plain.hidden_states is None
    assert [tuple(h.shape[2:]) for h in out.hidden_states] == [(32, 32), (16, 16), (8, 8), (4, 4), (2, 2)]
    assert [h.shape for h in last_two.hidden_states] == [h.shape for h in out.hidden_states[-2:]]
    torch.testing.assert_close(out.pooler_output, plain.pooler_output)  # the same features either way
    model.config.output_hidden_states = True
    with torch.no_grad():
        assert len(model(pixels()).hidden_states) == 5


def test_misspelt_or_unsupported_arguments_raise():
    model = CSKDForAestheticScoring(tiny_config()).eval()
    with pytest.raises(TypeError, match="output_hiden_states"):
        model(pixels(), output_hiden_states=True)
    with pytest.raises(ValueError, match="attentions"):
        model(pixels(), output_attentions=True)


def test_num_labels_rebins_the_config_and_reheads_a_checkpoint(tmp_path):
    config = tiny_config()
    config.num_labels = 3
    assert (config.num_bins, config.bin_scores, config.id2label) == (3, [1.0, 2.0, 3.0], {0: "1", 1: "2", 2: "3"})
    assert CSKDForAestheticScoring(config).head.layers[-1].out_features == 3

    model = CSKDForAestheticScoring(tiny_config())
    model.save_pretrained(tmp_path)
    reheaded = AutoModelForImageClassification.from_pretrained(tmp_path, num_labels=5, ignore_mismatched_sizes=True)
    assert reheaded.config.num_bins == reheaded.config.num_labels == 5
    assert reheaded.head.layers[-1].out_features == 5
    assert same_tensors(reheaded.backbone.state_dict(), model.backbone.state_dict())
    with torch.no_grad():
        assert reheaded(pixels()).probabilities.shape == (2, 5)

    para = CSKDForAestheticScoring(tiny_config(num_bins=9, bin_scores=[1 + 0.5 * i for i in range(9)]))
    para.save_pretrained(tmp_path / "para")
    same = CSKDForAestheticScoring.from_pretrained(tmp_path / "para", num_labels=9)
    assert same.config.bin_scores == para.config.bin_scores  # the same number of bins keeps their scores


def test_labels_as_bin_indices_or_mean_scores():
    model = CSKDForAestheticScoring(tiny_config(head_dropout=0.0)).eval()
    out = model(pixels(), labels=torch.tensor([0, 9]))
    one_hot = torch.nn.functional.one_hot(torch.tensor([0, 9]), 10).float()
    torch.testing.assert_close(out.loss, earth_movers_distance(out.probabilities, one_hot).mean())
    out = model(pixels(), labels=torch.tensor([3.5, 7.0]))
    torch.testing.assert_close(out.loss, ((out.mean_score - torch.tensor([3.5, 7.0])) ** 2).mean())
    regression = CSKDForAestheticScoring(tiny_config(problem_type="regression")).eval()
    with pytest.raises(ValueError, match="problem_type='regression'"):
        regression(pixels(), labels=torch.full((2, 10), 0.1))
    with pytest.raises(ValueError, match="bin indices"):
        model(pixels(), labels=torch.tensor([0, 10]))
    with pytest.raises(ValueError, match="multi_label_classification"):
        tiny_config(problem_type="multi_label_classification")


def test_base_model_is_a_cskd_model_sharing_the_backbone(tmp_path):
    model = CSKDForAestheticScoring(tiny_config())
    base = model.base_model
    assert isinstance(base, CSKDModel) and base.backbone is model.backbone
    assert base.config.to_dict() == model.config.to_dict()
    assert model.base_model is base  # built once
    assert model.state_dict().keys() == CSKDForAestheticScoring(tiny_config()).state_dict().keys()
    base.save_pretrained(tmp_path)
    assert model.config.architectures != ["CSKDModel"]  # saving the base model leaves the head's config alone
    loaded = CSKDModel.from_pretrained(tmp_path)
    assert same_tensors(loaded.backbone.state_dict(), model.backbone.state_dict())
    _, info = CSKDForAestheticScoring.from_pretrained(tmp_path, output_loading_info=True)
    assert info["missing_keys"] == {"head.layers.1.weight", "head.layers.1.bias"}


@pytest.mark.parametrize("architecture", ["test_resnet", "test_vit"])
def test_activation_checkpointing_gives_the_same_gradients(architecture):
    assert CSKDForAestheticScoring.supports_gradient_checkpointing  # the class says so, not only instances
    torch.manual_seed(0)
    model = CSKDForAestheticScoring(tiny_config(architecture, head_dropout=0.0)).train()
    labels = torch.full((2, 10), 0.1)
    model(pixels(), labels=labels).loss.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    model.activation_checkpointing_enable()
    assert model.is_activation_checkpointing
    model(pixels(), labels=labels).loss.backward()
    for name, grad in expected.items():
        torch.testing.assert_close(dict(model.named_parameters())[name].grad, grad, msg=name)
    model.activation_checkpointing_disable()
    assert not model.is_activation_checkpointing
    # The blocks' classes are made at run time; the model still pickles and copies (torch.save, spawned workers).
    import pickle

    for copied in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert same_tensors(copied.state_dict(), model.state_dict())
        copied.activation_checkpointing_enable()
        assert copied.is_activation_checkpointing


def test_vit_hidden_states_are_the_computed_tokens_and_get_gradients():
    model = CSKDModel(tiny_config("test_vit"))
    out = model(pixels(), output_hidden_states=True)
    assert [h.shape for h in out.hidden_states] == [(2, 17, 64)] * 6  # a class token and 4x4 patches, per block
    out.hidden_states[0].retain_grad()
    out.pooler_output.pow(2).sum().backward()  # (a plain sum of a LayerNorm output is constant)
    assert out.hidden_states[0].grad is not None and out.hidden_states[0].grad.abs().sum() > 0


def test_clip_tower_backbone_loads_clip_weights_and_gives_its_image_embedding(random_clip_dir, tmp_path, sample_dir):
    config = CSKDConfig.for_clip(str(random_clip_dir))
    assert config.backbone_type == "clip" and config.image_size == 32 and config.clip_vision_config["projection_dim"]
    model = CSKDForAestheticScoring.from_config(config).eval()
    vision_config = CLIPVisionConfig(**config.clip_vision_config)
    clip = CLIPVisionModelWithProjection.from_pretrained(random_clip_dir, config=vision_config).eval()
    pixel_values = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = clip(pixel_values=pixel_values).image_embeds
        features = model(pixel_values=pixel_values).pooler_output
    torch.testing.assert_close(features, expected)

    processor = CSKDImageProcessor.from_model_config(config)
    assert processor.image_mean == pytest.approx([0.4815, 0.4578, 0.4082], abs=1e-4)  # CLIP's, not ImageNet's
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixel_values=pixel_values).logits, model(pixel_values=pixel_values).logits)
    assert (
        main(["score", str(sample_dir), "--model", str(tmp_path), "--no-progress", "-o", str(tmp_path / "s.csv")]) == 0
    )


def test_clip_tower_hidden_states_are_its_encoder_layers(random_clip_dir):
    model = CSKDForAestheticScoring.from_config(CSKDConfig.for_clip(str(random_clip_dir))).eval()
    with torch.no_grad():
        out = model(pixels(size=32), output_hidden_states=True)
    layers = model.backbone.config.num_hidden_layers
    assert len(out.hidden_states) == layers and out.hidden_states[-1].shape[0] == 2
    assert model.supports_gradient_checkpointing  # CLIP's encoder layers are transformers' own


def test_a_scalar_head_predicts_the_score_and_spreads_it_over_the_bins():
    """`score_head="scalar"` (a converted LAION predictor): the score is the head's output over the L2-normalised
    features, exactly; the distribution is the discretised Gaussian around it, so that SKD can distil it."""
    torch.manual_seed(0)
    config = tiny_config(score_head="scalar", scalar_spread=0.8, normalize_features=True, head_dropout=0.0)
    model = CSKDForAestheticScoring(config).eval()
    assert model.head.layers[-1].out_features == 1
    pixel_values = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        output = model(pixel_values=pixel_values)
        features = torch.nn.functional.normalize(model.base_model(pixel_values=pixel_values).pooler_output, dim=-1)
        expected = model.head(features)[:, 0]
    torch.testing.assert_close(output.mean_score, expected)
    bins = torch.tensor(config.bin_scores)
    gaussian = torch.exp(-((bins - expected[:, None]) ** 2) / (2 * 0.8**2))
    torch.testing.assert_close(output.probabilities, gaussian / gaussian.sum(1, keepdim=True))
    assert output.logits.shape == (4, 1) and (output.std_score > 0).all()  # a one-label model: its logit is the score
    torch.testing.assert_close(output.logits[:, 0], output.mean_score)
    loss = model(pixel_values=pixel_values, labels=output.probabilities.flip(1)).loss
    loss.backward()  # trainable as any scorer (EMD through the Gaussian)
    assert model.head.layers[-1].weight.grad.abs().sum() > 0


def test_a_one_label_model_takes_scores_bin_indices_and_distributions():
    """`num_labels=1` is a regression model (the scalar head), and every label form still has its loss."""
    model = CSKDForAestheticScoring(tiny_config(num_labels=1, head_dropout=0.0)).eval()
    scores = torch.tensor([3.5, 7.0])
    out = model(pixels(), labels=scores)
    assert out.logits.shape == (2, 1) and out.probabilities.shape == (2, 10)
    torch.testing.assert_close(out.loss, torch.nn.functional.mse_loss(out.logits[:, 0], scores))
    torch.testing.assert_close(model(pixels(), labels=scores[:, None]).loss, out.loss)  # (batch, 1), as transformers
    indices = model(pixels(), labels=torch.tensor([0, 9]))
    one_hot = torch.nn.functional.one_hot(torch.tensor([0, 9]), 10).float()
    torch.testing.assert_close(indices.loss, earth_movers_distance(indices.probabilities, one_hot).mean())
    model.config.problem_type = "single_label_classification"
    torch.testing.assert_close(model(pixels(), labels=torch.tensor([0, 9])).loss, indices.loss)
    votes = torch.full((2, 10), 0.1)
    model.config.problem_type = None
    distribution = model(pixels(), labels=votes)
    torch.testing.assert_close(distribution.loss, earth_movers_distance(distribution.probabilities, votes).mean())


def test_multi_label_is_refused_before_the_forward_pass_even_when_set_late():
    config = tiny_config()
    model = CSKDForAestheticScoring(config).eval()
    config.problem_type = "multi_label_classification"
    with pytest.raises(ValueError, match="bins are ordered"):
        CSKDForAestheticScoring(config)
    calls = []
    model.backbone.register_forward_pre_hook(lambda *args: calls.append(1))
    with pytest.raises(ValueError, match="bins are ordered"):
        model(pixels(), labels=torch.ones(2, 2))
    assert calls == []  # refused before the backbone ran


def test_mismatched_weights_raise_transformers_runtime_error_naming_the_folder(tmp_path):
    CSKDForAestheticScoring(tiny_config()).save_pretrained(tmp_path)
    with pytest.raises(RuntimeError, match=str(tmp_path)) as refusal:
        CSKDForAestheticScoring.from_pretrained(tmp_path, num_labels=5)
    assert isinstance(refusal.value, MismatchedWeightsError)
    regression = CSKDForAestheticScoring.from_pretrained(tmp_path, num_labels=1, ignore_mismatched_sizes=True)
    assert regression.config.num_labels == 1 and regression.head.layers[-1].out_features == 1
    (tmp_path / "model.safetensors").write_bytes(b"cut")
    with pytest.raises(OSError, match="damaged"):
        CSKDForAestheticScoring.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "cskd", "num_bins": 1}')
    with pytest.raises(ValueError, match="num_bins"):
        CSKDForAestheticScoring.from_pretrained(tmp_path)


def test_one_step_of_transformers_trainer_on_a_one_label_model(tmp_path):
    """A regression user's run: float scores as `labels`, transformers' `Trainer` and its default collator."""
    from transformers import Trainer, TrainingArguments

    torch.manual_seed(0)
    model = CSKDForAestheticScoring(tiny_config(num_labels=1))
    images = pixels(batch_size=4)
    dataset = [{"pixel_values": image, "labels": score} for image, score in zip(images, [2.0, 4.5, 6.0, 8.5])]
    before = model.head.layers[-1].weight.detach().clone()
    arguments = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=1,
        per_device_train_batch_size=4,
        learning_rate=0.1,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        logging_steps=1,
    )
    trainer = Trainer(model=model, args=arguments, train_dataset=dataset)
    result = trainer.train()
    assert result.global_step == 1 and torch.isfinite(torch.tensor(result.training_loss))
    assert not torch.equal(model.head.layers[-1].weight.detach(), before)
