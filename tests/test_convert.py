"""`cskd convert`: published predictors as CSKD models, checked against the original code (pyiqa's own NIMA forward
pass; the LAION predictor's published MLP over the same CLIP, with OpenAI CLIP's own preprocessing), then used as
any CSKD model: `cskd score`, the pipeline, ONNX, the Space, `cskd models`."""

import csv
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from transformers import AutoModelForImageClassification, pipeline

from cskd_hf import list_models
from cskd_hf.cli import main
from cskd_hf.convert import collapse_linear_layers, convert_laion_aesthetic, convert_pyiqa_nima, read_checkpoint
from tests.helpers import write_hostile_pickle, write_tiny_laion

REPO = Path(__file__).resolve().parents[1]
# Real photographs of several aspect ratios (scikit-image's), as a user's folder holds them.
PHOTOS = sorted((REPO / "spaces" / "examples").glob("*.jpg"))


def write_pyiqa_nima(folder: Path, kind: str) -> dict:
    """pyiqa's NIMA built by pyiqa with random weights, saved in pyiqa's checkpoint format, and converted."""
    import pyiqa.archs.nima_arch as nima_arch

    from cskd_hf.convert import NIMA_ARCHITECTURES

    architecture, image_size = NIMA_ARCHITECTURES[kind]
    create_model = timm.create_model
    nima_arch.timm.create_model = lambda *args, **kwargs: create_model(*args, **{**kwargs, "pretrained": False})
    try:  # pyiqa always asks timm for ImageNet weights, which would download
        torch.manual_seed(0)
        network = nima_arch.NIMA(base_model_name=architecture, pretrained=False).eval()
    finally:
        nima_arch.timm.create_model = create_model
    # Random weights with BatchNorm's initial statistics give nearly the same features for every photo. Statistics of
    # real images (one pass in training mode over the photos, as training leaves them) make the scores differ.
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # the plain average over the pass
    size = (image_size, image_size)
    photos = [torch.nn.functional.interpolate(image_tensor(photo), size=size, mode="bilinear") for photo in PHOTOS]
    with torch.no_grad():
        network.train()(torch.cat(photos))
        network.eval().classifier[2].weight.normal_(std=0.05)
    checkpoint = folder / f"NIMA_{architecture}_ava-test.pth"
    torch.save({"params": network.state_dict()}, checkpoint)  # pyiqa's format: load_pretrained_network reads "params"
    converted = convert_pyiqa_nima(checkpoint, folder / "out", kind)
    return {"network": network, "checkpoint": checkpoint, "converted": converted}


@pytest.fixture(scope="module")
def nima(tmp_path_factory):
    return write_pyiqa_nima(tmp_path_factory.mktemp("nima"), "pyiqa-nima")


@pytest.fixture(scope="module")
def nima_vgg16(tmp_path_factory):
    return write_pyiqa_nima(tmp_path_factory.mktemp("nima-vgg16"), "pyiqa-nima-vgg16")


@pytest.fixture(scope="module")
def laion(tmp_path_factory):
    return write_tiny_laion(tmp_path_factory.mktemp("laion"))


def image_tensor(photo) -> torch.Tensor:
    """What pyiqa makes of a file: `imread2tensor` (PIL, RGB, floats in [0, 1]), as a batch of one."""
    from pyiqa.utils.img_util import imread2tensor

    return imread2tensor(str(photo), rgb=True).unsqueeze(0)


def pyiqa_nima_scores(network, photos) -> tuple[list[float], list[list[float]]]:
    """What pyiqa computes for a file: `image_tensor` and the network's own forward."""
    scores, distributions = [], []
    with torch.no_grad():
        for photo in photos:
            score, distribution = network(image_tensor(photo), return_dist=True)
            scores.append(score.item())
            distributions.append(distribution[0].tolist())
    return scores, distributions


def laion_reference_scores(tower, mlp, photos) -> list[float]:
    """The LAION predictor as its code runs it: OpenAI CLIP's preprocessing, the image embedding, L2 normalisation
    (numpy, as `normalized` does) and the published MLP."""
    from clip.clip import _transform

    preprocess = _transform(224)
    scores = []
    with torch.no_grad():
        for photo in photos:
            embedding = tower(pixel_values=preprocess(Image.open(photo)).unsqueeze(0)).image_embeds.numpy()
            norm = np.atleast_1d(np.linalg.norm(embedding, 2, -1))
            norm[norm == 0] = 1
            scores.append(mlp(torch.from_numpy(embedding / norm[:, None]).float()).item())
    return scores


def cskd_scores(model_dir, photos, tmp_path, *options) -> list[float]:
    output = tmp_path / "scores.csv"
    assert main(["score", *map(str, photos), "--model", str(model_dir), "-o", str(output), *options]) == 0
    rows = {row["path"]: row for row in csv.DictReader(open(output))}
    return [float(rows[str(photo)]["score"]) for photo in photos]


@pytest.mark.parametrize("kind", ["nima", "nima_vgg16"])
def test_pyiqa_nima_converts_to_pyiqas_own_scores(kind, request, tmp_path):
    nima = request.getfixturevalue(kind)
    expected, distributions = pyiqa_nima_scores(nima["network"], PHOTOS)
    assert np.ptp(expected) > 0.05  # the photos get different scores: the comparison can tell them apart
    scorer = pipeline("image-aesthetics", model=str(nima["converted"]))
    results = scorer([str(photo) for photo in PHOTOS])
    np.testing.assert_allclose([result["score"] for result in results], expected, atol=1e-5)
    np.testing.assert_allclose([result["distribution"] for result in results], distributions, atol=1e-5)
    np.testing.assert_allclose(
        cskd_scores(nima["converted"], PHOTOS, tmp_path, "--backend", "torch"), expected, atol=1e-5
    )
    # The default, torch-free path resizes float pixels with PIL, within 1e-3 of an 8-bit level of torchvision's.
    np.testing.assert_allclose(cskd_scores(nima["converted"], PHOTOS, tmp_path), expected, atol=1e-4)


def test_laion_converts_to_the_published_mlp_over_the_same_clip(laion, tmp_path):
    expected = laion_reference_scores(laion["tower"], laion["mlp"], PHOTOS)
    assert np.ptp(expected) > 0.05
    results = pipeline("image-aesthetics", model=str(laion["converted"]))([str(photo) for photo in PHOTOS])
    np.testing.assert_allclose([result["score"] for result in results], expected, atol=1e-5)
    np.testing.assert_allclose(cskd_scores(laion["converted"], PHOTOS, tmp_path), expected, atol=1e-5)
    for result in results:  # the scalar as a distribution over AVA's bins, centred where the score is
        distribution = np.asarray(result["distribution"])
        assert distribution.sum() == pytest.approx(1, abs=1e-5)
        assert abs(np.argmax(distribution) + 1 - result["score"]) <= 0.5


def relu_mlp() -> torch.nn.Sequential:
    """The LAION predictor's ReLU variant (`ava+logos-l14-reluMSE.pth`), as the original repository defines it."""
    return torch.nn.Sequential(
        torch.nn.Linear(768, 1024), torch.nn.ReLU(), torch.nn.Dropout(0.2),
        torch.nn.Linear(1024, 128), torch.nn.ReLU(), torch.nn.Dropout(0.2),
        torch.nn.Linear(128, 64), torch.nn.ReLU(), torch.nn.Dropout(0.1),
        torch.nn.Linear(64, 16), torch.nn.ReLU(),
        torch.nn.Linear(16, 1),
    )  # fmt: skip


def test_the_relu_variant_keeps_its_hidden_layers(laion, tmp_path):
    torch.manual_seed(2)
    mlp = relu_mlp().eval()
    with torch.no_grad():
        for layer in mlp:
            if isinstance(layer, torch.nn.Linear):
                layer.weight.normal_(std=2.0 / layer.in_features**0.5)
        mlp[-1].bias.fill_(5.0)
    checkpoint = tmp_path / "ava+logos-l14-reluMSE.pth"
    torch.save({f"layers.{key}": value for key, value in mlp.state_dict().items()}, checkpoint)  # the file's keys
    converted = convert_laion_aesthetic(checkpoint, tmp_path / "relu", clip=laion["clip"])
    wrapped = torch.nn.Module()
    wrapped.layers = mlp  # the original's `MLP.layers`
    expected = laion_reference_scores(laion["tower"], lambda embedding: wrapped.layers(embedding), PHOTOS)
    assert np.ptp(expected) > 0.05
    results = pipeline("image-aesthetics", model=str(converted))([str(photo) for photo in PHOTOS])
    np.testing.assert_allclose([result["score"] for result in results], expected, atol=1e-5)
    assert AutoModelForImageClassification.from_pretrained(converted).config.head_hidden_sizes == [1024, 128, 64, 16]
    unnamed = tmp_path / "aesthetic.pth"
    unnamed.write_bytes(checkpoint.read_bytes())
    with pytest.raises(ValueError, match="aesthetic.pth: is this the linear or the ReLU MLP"):
        convert_laion_aesthetic(unnamed, tmp_path / "unnamed", clip=laion["clip"])


def test_the_mlp_collapses_to_one_affine_map():
    from pyiqa.archs.laion_aes_arch import MLP

    torch.manual_seed(1)
    mlp = MLP(768).eval()
    weight, bias = collapse_linear_layers(mlp.state_dict())
    embeddings = torch.nn.functional.normalize(torch.randn(16, 768), dim=-1)
    with torch.no_grad():
        np.testing.assert_allclose((embeddings.double() @ weight.T + bias).numpy(), mlp(embeddings).numpy(), atol=1e-6)


def test_converted_models_keep_their_originals_preprocessing(nima, laion):
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(nima["converted"])
    assert processor.image_size == processor.resize_size == 299
    assert (processor.resize_mode, processor.resize_input, processor.interpolation) == (
        "shortest_edge",
        "float",
        "bilinear",
    )
    assert processor.image_mean == [0.5, 0.5, 0.5] and processor.draft_size() is None  # timm's for the architecture
    processor = AutoImageProcessor.from_pretrained(laion["converted"])
    assert (processor.resize_mode, processor.resize_input, processor.image_size) == ("shortest_edge", "pil", 224)
    card = (laion["converted"] / "README.md").read_text()
    assert "license: apache-2.0" in card and "improved-aesthetic-predictor" in card
    card = (nima["converted"] / "README.md").read_text()
    assert "license_name: polyform-noncommercial-1.0.0" in card and "No commercial use" in card


def test_a_converted_model_exports_to_onnx_with_parity(laion, tmp_path):
    pytest.importorskip("onnxruntime")
    import shutil

    from cskd_hf.inference.export import export_onnx

    folder = tmp_path / "laion"
    shutil.copytree(laion["converted"], folder)
    export_onnx(folder)
    expected = cskd_scores(folder, PHOTOS, tmp_path)
    np.testing.assert_allclose(cskd_scores(folder, PHOTOS, tmp_path, "--backend", "onnxruntime"), expected, atol=1e-5)


def test_the_space_serves_a_converted_model(laion):
    spec = importlib.util.spec_from_file_location("space_app_convert", REPO / "spaces" / "app.py")
    app = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = app
    spec.loader.exec_module(app)
    scorers = app.Scorers([str(laion["converted"])])
    image = app.read_upload(str(PHOTOS[0]), app.Limits(), scorers.draft_size)
    expected = laion_reference_scores(laion["tower"], laion["mlp"], PHOTOS[:1])[0]
    assert scorers.score(image)["score"] == pytest.approx(expected, abs=1e-5)


def test_cskd_convert_and_models_on_the_command_line(laion, tmp_path, capsys):
    out = tmp_path / "converted"
    command = ["convert", "laion-aesthetic", str(laion["checkpoint"]), "--clip", str(laion["clip"]), "--out", str(out)]
    assert main(command) == 0
    converted = AutoModelForImageClassification.from_pretrained(out).config
    assert converted.score_head == "scalar" and converted.num_labels == 1  # a regression model, as transformers has it
    assert converted.num_bins == 10 and converted.id2label == {0: "score"}  # its Gaussian still spreads over AVA's
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert all(model["model_id"] in listing for model in list_models())
    assert {model["kind"] for model in list_models("converted")} == {"converted"}
    assert {"pyiqa/nima", "laion/aesthetic-v2", "cskd/mv2-ava"} <= {model["model_id"] for model in list_models()}


def test_bad_checkpoints_are_named_and_no_pickle_runs(laion, tmp_path, capsys):
    marker = tmp_path / "code-ran"
    hostile = tmp_path / "NIMA_InceptionV2_ava-hostile.pth"
    write_hostile_pickle(hostile, marker)
    with pytest.raises(ValueError, match="NIMA_InceptionV2_ava-hostile.pth: not a PyTorch checkpoint"):
        read_checkpoint(hostile)
    assert not marker.exists()

    cut = tmp_path / "model.safetensors"
    cut.write_bytes(b'\x08\x00\x00\x00\x00\x00\x00\x00{"a":')
    with pytest.raises(ValueError, match="model.safetensors: not a safetensors file"):
        read_checkpoint(cut)

    other = tmp_path / "resnet.pth"
    torch.save({"params": {"base_model.conv1.weight": torch.zeros(1)}}, other)
    assert main(["convert", "pyiqa-nima", str(other), "--out", str(tmp_path / "nope")]) == 2
    assert "resnet.pth: not pyiqa's NIMA (inception_resnet_v2)" in capsys.readouterr().err

    two_outputs = tmp_path / "two.pth"
    torch.save({"layers.0.weight": torch.zeros(2, 768), "layers.0.bias": torch.zeros(2)}, two_outputs)
    with pytest.raises(ValueError, match="two.pth: the MLP predicts 2 values"):
        convert_laion_aesthetic(two_outputs, tmp_path / "nope", clip=laion["clip"], activation="linear")
    wrong_width = tmp_path / "wide.pth"
    torch.save({"layers.0.weight": torch.zeros(1, 1024), "layers.0.bias": torch.zeros(1)}, wrong_width)
    with pytest.raises(ValueError, match="wide.pth: the MLP reads 1024-d embeddings, but .* gives 768-d ones"):
        convert_laion_aesthetic(wrong_width, tmp_path / "nope", clip=laion["clip"], activation="linear")


def test_a_converted_model_needs_only_torch_timm_and_transformers(laion, tmp_path):
    """The converted folder carries the model code: `trust_remote_code=True` without cskd-hf gives the same score."""
    import subprocess
    import textwrap

    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["cskd_hf"] = None  # any import of the package now fails
        import torch
        from PIL import Image
        from transformers import AutoImageProcessor, AutoModelForImageClassification
        folder = {str(laion["converted"])!r}
        model = AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True).eval()
        processor = AutoImageProcessor.from_pretrained(folder, trust_remote_code=True)
        assert "cskd_hf" not in type(model).__module__
        with torch.no_grad():
            print(repr(model(**processor(Image.open({str(PHOTOS[0])!r}).convert("RGB"))).mean_score.item()))
        """
    )
    env = {"HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = laion_reference_scores(laion["tower"], laion["mlp"], PHOTOS[:1])[0]
    assert float(result.stdout.strip().splitlines()[-1]) == pytest.approx(expected, abs=1e-5)
