"""`cskd convert`: published aesthetic predictors, from the checkpoint files their users download, as CSKD models.

A converted folder is an ordinary `CSKDForAestheticScoring` (with its image processor and a card giving the source and
its licence): `cskd score`, the `image-aesthetics` pipeline, ONNX export, the Space, `cskd evaluate`, and SKD as a
teacher all take it. Each converter reproduces its original's preprocessing and forward pass:

- `pyiqa-nima` and `pyiqa-nima-vgg16`: pyiqa's NIMA (Talebi & Milanfar; InceptionResNetV2 and VGG16 on AVA,
  `NIMA_InceptionV2_ava-*.pth`, `NIMA_VGG16_ava-*.pth`). pyiqa resizes the shorter side of a float `[0, 1]` tensor
  to the architecture's input size (299, 224; bilinear, antialiased), centre-crops it, normalises with timm's mean
  and std for the architecture, averages the last feature map of timm's `features_only` network (for VGG16 the last
  max-pool, without fc6 / fc7) and applies dropout + linear + softmax over 10 bins. Keys `base_model.*` are timm's,
  with `features_only`'s flattened names (`features_0` for `features.0`); `classifier.2.*` is the linear layer.
- `laion-aesthetic`: the LAION aesthetic predictor v2 (`sac+logos+ava1-l14-linearMSE.pth`, `ava+logos-l14-
  linearMSE.pth`; `ava+logos-l14-reluMSE.pth` with ReLUs): an MLP over CLIP ViT-L/14's L2-normalised image
  embedding, predicting the mean rating. The linear MLPs' five layers have no activation between them, so they are
  one affine map: the converted head is that map, computed in float64 (the dropouts are off at inference); the ReLU
  MLP keeps its hidden layers. CLIP comes from the usual Hub id or a local folder (transformers' format), with
  OpenAI CLIP's own preprocessing, which the predictor's code uses (PIL: shorter side to 224, bicubic, centre crop;
  CLIP's mean and std). The scalar becomes a
  distribution over 1..10 (`score_head="scalar"`), so it can teach SKD; the score stays the MLP's output.

Checkpoints are read without unpickling code (`weights_only=True`, or safetensors).
"""

import functools
import logging
import os
import pickle
import re
import zipfile
from pathlib import Path

import torch
from huggingface_hub import ModelCard, ModelCardData
from safetensors import SafetensorError
from safetensors.torch import load_file

from .hub import TEMPLATES
from .metrics import AVA_BIN_SCORES
from .models.cskd import CSKDConfig, CSKDForAestheticScoring, CSKDImageProcessor

logger = logging.getLogger(__name__)

LAION_CLIP = "openai/clip-vit-large-patch14"
# σ of the distribution a scalar score becomes: about the spread of a photo's votes on AVA (Murray et al. report
# standard deviations mostly between 1.2 and 1.7 on the 1..10 scale).
LAION_SPREAD = 1.4

NIMA_ARCHITECTURES = {"pyiqa-nima": ("inception_resnet_v2", 299), "pyiqa-nima-vgg16": ("vgg16", 224)}
PYIQA_LICENCE = {
    "license": "other",
    "license_name": "polyform-noncommercial-1.0.0",
    "license_link": "https://polyformproject.org/licenses/noncommercial/1.0.0/",
    "license_note": "pyiqa is licensed under the PolyForm Noncommercial License 1.0.0 (and the NTU S-Lab License "
    "for some components); its NIMA weights were trained on AVA, whose images are for research only. No commercial "
    "use.",
    "citation": "Talebi, Milanfar. NIMA: Neural Image Assessment. IEEE TIP 2018. Chen et al. TOPIQ / pyiqa: "
    "https://github.com/chaofengc/IQA-PyTorch",
}

SOURCES = {
    "pyiqa-nima-vgg16": {
        "title": "NIMA (VGG16, AVA), converted from pyiqa",
        "source": "https://github.com/chaofengc/IQA-PyTorch (pyiqa metric `nima-vgg16-ava`, weights "
        "`NIMA_VGG16_ava-dc4e8265.pth`)",
        **PYIQA_LICENCE,
    },
    "pyiqa-nima": {
        "title": "NIMA (InceptionResNetV2, AVA), converted from pyiqa",
        "source": "https://github.com/chaofengc/IQA-PyTorch (pyiqa metric `nima`, weights "
        "`NIMA_InceptionV2_ava-b0c77c00.pth`)",
        **PYIQA_LICENCE,
    },
    "laion-aesthetic": {
        "title": "LAION aesthetic predictor v2 (CLIP ViT-L/14 + MLP), converted",
        "source": "https://github.com/christophschuhmann/improved-aesthetic-predictor (the MLP) over "
        "https://huggingface.co/openai/clip-vit-large-patch14 (CLIP ViT-L/14)",
        "license": "apache-2.0",
        "license_note": "The MLP weights come from christophschuhmann/improved-aesthetic-predictor (Apache-2.0); "
        "CLIP ViT-L/14 from OpenAI (MIT). The MLP was trained on ratings of AVA, Simulacra Aesthetic Captions and "
        "LAION-Logos.",
        "citation": "Schuhmann et al. LAION-5B, NeurIPS 2022 (the aesthetic predictor). Radford et al. Learning "
        "Transferable Visual Models From Natural Language Supervision, ICML 2021.",
    },
}


def read_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A checkpoint's tensors by name: safetensors, or a PyTorch file read with `weights_only=True` (no code runs),
    unwrapped from pyiqa's `{"params": ...}` or a `{"state_dict": ...}`, without DataParallel's `module.` prefixes."""
    path = Path(path)
    if path.suffix == ".safetensors":
        try:
            state = load_file(str(path))
        except SafetensorError as error:
            raise ValueError(f"{path}: not a safetensors file ({error})") from error
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile) as error:
            # weights_only's refusal of code, a zip or a truncated file: name the file
            raise ValueError(f"{path}: not a PyTorch checkpoint of plain tensors ({error})") from error
    for wrapper in ("params", "state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise ValueError(f"{path}: expected a mapping of tensor names to tensors")
    return {name.removeprefix("module."): tensor for name, tensor in state.items()}


def convert_pyiqa_nima(checkpoint: str | os.PathLike, out_dir: str | os.PathLike, kind: str = "pyiqa-nima") -> Path:
    """pyiqa's NIMA checkpoint (`kind`: `pyiqa-nima`, InceptionResNetV2, or `pyiqa-nima-vgg16`) as a CSKD model
    folder; returns the folder."""
    if kind not in NIMA_ARCHITECTURES:
        raise ValueError(f"kind must be one of {sorted(NIMA_ARCHITECTURES)}, got {kind!r}")
    architecture, image_size = NIMA_ARCHITECTURES[kind]
    config = CSKDConfig(
        architecture=architecture, image_size=image_size, bin_scores=AVA_BIN_SCORES, head_dropout=0.0,
        backbone_pre_logits=False,  # pyiqa pools the last feature map (VGG16: without fc6 / fc7)
    )  # fmt: skip
    model = CSKDForAestheticScoring(config).eval()
    expected = model.state_dict().keys()
    renamed = {}
    for name, tensor in read_checkpoint(checkpoint).items():
        if name.startswith("base_model."):
            name = "backbone." + name.removeprefix("base_model.")
            if name not in expected:  # features_only flattens `features.0` into `features_0`
                name = re.sub(r"^backbone\.([a-z]+)_(\d+)\.", r"backbone.\1.\2.", name)
            renamed[name] = tensor
        elif name.startswith("classifier.2."):  # Flatten, Dropout, Linear, Softmax
            renamed["head.layers.1." + name.removeprefix("classifier.2.")] = tensor
        else:
            renamed[name] = tensor
    _load_exactly(model, renamed, checkpoint, f"pyiqa's NIMA ({architecture})")
    return _save(model, pyiqa_image_processor(config), out_dir, kind, checkpoint)


def pyiqa_image_processor(config: CSKDConfig) -> CSKDImageProcessor:
    """pyiqa's preprocessing: float tensors resized with torchvision's default, bilinear with antialiasing, the
    shorter side to the input size; every image decoded in full."""
    return CSKDImageProcessor.from_model_config(
        config, resize_size=config.image_size, resize_mode="shortest_edge", resize_input="float",
        interpolation="bilinear", draft_decoding=False,
    )  # fmt: skip


def linear_layers(state: dict[str, torch.Tensor]) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
    """`(i, weight, bias)` of each `layers.<i>` linear layer of an MLP checkpoint, in the order of `i`."""
    indices = sorted({int(name.split(".")[1]) for name in state if name.startswith("layers.")})
    return [(index, state[f"layers.{index}.weight"], state[f"layers.{index}.bias"]) for index in indices]


def collapse_linear_layers(state: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The affine map `x ↦ W x + b` of a stack of linear layers without activations (`layers.<i>.weight/bias`, in
    the order of `i`), composed in float64."""
    weight, bias = None, None
    for index, layer_weight, layer_bias in linear_layers(state):
        layer_weight, layer_bias = layer_weight.double(), layer_bias.double()
        if weight is None:
            weight, bias = layer_weight, layer_bias
        else:
            if layer_weight.shape[1] != weight.shape[0]:
                raise ValueError(
                    f"layers.{index} takes {layer_weight.shape[1]} inputs after {weight.shape[0]} outputs"
                )
            weight, bias = layer_weight @ weight, layer_weight @ bias + layer_bias
    if weight is None:
        raise ValueError("no `layers.<i>.weight` in the checkpoint")
    return weight, bias


def convert_laion_aesthetic(
    checkpoint: str | os.PathLike,
    out_dir: str | os.PathLike,
    clip: str | os.PathLike = LAION_CLIP,
    spread: float = LAION_SPREAD,
    activation: str | None = None,
) -> Path:
    """The LAION aesthetic predictor's MLP checkpoint over the CLIP image tower `clip` as a CSKD model folder.

    `activation`: `"linear"` for the linear MLPs (`*-linearMSE.pth`, no activation: collapsed into one layer) or
    `"relu"` for `*-reluMSE.pth` (a ReLU after each hidden layer: kept as a head with those hidden layers). The two
    have the same keys, so by default it is read from the file name, and a name that says neither is refused.
    """
    file_name = Path(checkpoint).name.lower()
    activation = activation or ("relu" if "relu" in file_name else "linear" if "linear" in file_name else None)
    if activation not in ("linear", "relu"):
        raise ValueError(
            f"{checkpoint}: is this the linear or the ReLU MLP? The file name says neither: pass activation="
            "'linear' or 'relu' (cskd convert --activation)"
        )
    state = {name.removeprefix("mlp."): tensor for name, tensor in read_checkpoint(checkpoint).items()}
    try:
        weight, bias = collapse_linear_layers(state)  # also checks that the layers chain
    except (KeyError, ValueError) as error:
        raise ValueError(f"{checkpoint}: not the LAION predictor's MLP ({error})") from error
    if weight.shape[0] != 1:
        raise ValueError(f"{checkpoint}: the MLP predicts {weight.shape[0]} values; the LAION predictor predicts one")
    layers = [(layer_weight, layer_bias) for _, layer_weight, layer_bias in linear_layers(state)]
    hidden_sizes = [layer_weight.shape[0] for layer_weight, _ in layers[:-1]] if activation == "relu" else []
    config = CSKDConfig.for_clip(
        str(clip), bin_scores=AVA_BIN_SCORES, head_dropout=0.0, head_hidden_sizes=hidden_sizes,
        normalize_features=True, score_head="scalar", scalar_spread=spread,
    )  # fmt: skip
    model = CSKDForAestheticScoring.from_config(config).eval()
    if weight.shape[1] != model.feature_size:
        raise ValueError(
            f"{checkpoint}: the MLP reads {weight.shape[1]}-d embeddings, but {clip} gives {model.feature_size}-d ones"
        )
    # Linear: the layers' product; ReLU: each layer into the head's own (its dropouts are off at inference).
    values = layers if activation == "relu" else [(weight.float(), bias.float())]
    head_linears = [module for module in model.head.layers if isinstance(module, torch.nn.Linear)]
    with torch.no_grad():
        for linear, (layer_weight, layer_bias) in zip(head_linears, values, strict=True):
            linear.weight.copy_(layer_weight)
            linear.bias.copy_(layer_bias)
    return _save(model, clip_image_processor(config), out_dir, "laion-aesthetic", checkpoint)


def clip_image_processor(config: CSKDConfig) -> CSKDImageProcessor:
    """OpenAI's CLIP preprocessing, which the LAION predictor uses: PIL's resize of the shorter side to the input size,
    a centre crop, CLIP's mean and std; every image decoded in full."""
    return CSKDImageProcessor.from_model_config(
        config, resize_size=config.image_size, resize_mode="shortest_edge", resize_input="pil", draft_decoding=False
    )


def _load_exactly(model: torch.nn.Module, state: dict, checkpoint, what: str) -> None:
    expected = model.state_dict()
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    wrong_shape = [name for name in expected.keys() & state.keys() if expected[name].shape != state[name].shape]
    if missing or unexpected or wrong_shape:
        raise ValueError(
            f"{checkpoint}: not {what}: {len(missing)} tensors missing {missing[:3]}, {len(unexpected)} unexpected "
            f"{unexpected[:3]}, {len(wrong_shape)} of another shape {wrong_shape[:3]}"
        )
    model.load_state_dict(state)


def _save(model, processor, out_dir, kind: str, checkpoint) -> Path:
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    converted_card(model.config, kind, Path(checkpoint).name).save(out_dir / "README.md")
    logger.info(f"converted {checkpoint} ({kind}) to {out_dir}")
    return out_dir


def converted_card(config: CSKDConfig, kind: str, checkpoint_name: str) -> ModelCard:
    """The card of a converted predictor (`templates/converted_card.md`): where it comes from, its licence, and how to
    use it."""
    source = SOURCES[kind]
    licence = {key: source[key] for key in ("license", "license_name", "license_link") if key in source}
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag="image-classification",
        tags=["image-aesthetics", "cskd", "converted", kind],
        **licence,
        model_name=source["title"],
    )
    return ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATES / "converted_card.md"),
        title=source["title"],
        kind=kind,
        checkpoint_name=checkpoint_name,
        source=source["source"],
        num_bins=config.num_bins,
        # A scalar head's score becomes a Gaussian of this σ; a distribution head has none.
        scalar_spread=config.scalar_spread if config.score_head == "scalar" else None,
        license_note=source["license_note"],
        citation=source["citation"],
    )


CONVERTERS = {
    "pyiqa-nima": functools.partial(convert_pyiqa_nima, kind="pyiqa-nima"),
    "pyiqa-nima-vgg16": functools.partial(convert_pyiqa_nima, kind="pyiqa-nima-vgg16"),
    "laion-aesthetic": convert_laion_aesthetic,
}

__all__ = [
    "CONVERTERS",
    "clip_image_processor",
    "collapse_linear_layers",
    "convert_laion_aesthetic",
    "convert_pyiqa_nima",
    "converted_card",
    "pyiqa_image_processor",
    "read_checkpoint",
]
