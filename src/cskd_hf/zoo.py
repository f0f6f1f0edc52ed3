"""The models cskd-hf knows: published predictors it converts, and the CSKD recipe's models, as timm and pyiqa list
theirs (`cskd models`, `cskd_hf.list_models()`)."""

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class KnownModel:
    model_id: str
    kind: str  # "converted": `cskd convert` makes it from a published checkpoint; "recipe": trained by cskd-hf
    architecture: str
    input_size: int
    bins: str
    source: str
    licence: str
    how: str  # the command that makes or fetches it


KNOWN_MODELS = (
    KnownModel(
        "pyiqa/nima",
        "converted",
        "inception_resnet_v2 + dropout + linear (NIMA)",
        299,
        "10 (AVA, 1-10)",
        "pyiqa metric `nima`: NIMA_InceptionV2_ava-b0c77c00.pth",
        "PolyForm Noncommercial 1.0.0 (pyiqa)",
        "cskd convert pyiqa-nima NIMA_InceptionV2_ava-b0c77c00.pth --out nima",
    ),
    KnownModel(
        "pyiqa/nima-vgg16",
        "converted",
        "vgg16 (conv layers, averaged) + dropout + linear (NIMA)",
        224,
        "10 (AVA, 1-10)",
        "pyiqa metric `nima-vgg16-ava`: NIMA_VGG16_ava-dc4e8265.pth",
        "PolyForm Noncommercial 1.0.0 (pyiqa)",
        "cskd convert pyiqa-nima-vgg16 NIMA_VGG16_ava-dc4e8265.pth --out nima-vgg16",
    ),
    KnownModel(
        "laion/aesthetic-v2",
        "converted",
        "CLIP ViT-L/14 image tower + L2 norm + linear MLP (a scalar)",
        224,
        "10 (AVA scale, Gaussian around the scalar)",
        "christophschuhmann/improved-aesthetic-predictor: sac+logos+ava1-l14-linearMSE.pth",
        "Apache-2.0 (MLP), MIT (CLIP)",
        "cskd convert laion-aesthetic sac+logos+ava1-l14-linearMSE.pth --out laion-aesthetic",
    ),
    KnownModel(
        "cskd/mv2-ava",
        "recipe",
        "mobilenetv2_100 + dropout + linear (CSKD student)",
        224,
        "10 (AVA, 1-10)",
        "CSKD recipe: CFA on ImageNet + OpenImages, SKD from the Swin-Base teacher on AVA (mu = beta = 15)",
        "AVA's terms (research)",
        "docs/training.md: the paper's recipe (not yet trained: needs GPUs and AVA)",
    ),
    KnownModel(
        "cskd/swin-b-ava-teacher",
        "recipe",
        "swin_base_patch4_window7_224 + MLP head (CSKD teacher)",
        224,
        "10 (AVA, 1-10)",
        "CSKD recipe: CFA to CLIP ViT-L/14, then fine-tuned on AVA with EMD",
        "AVA's terms (research)",
        "docs/training.md: the paper's recipe (not yet trained: needs GPUs and AVA)",
    ),
    KnownModel(
        "cskd/vit-tiny-ava",
        "recipe",
        "vit_tiny_patch16_224 + dropout + linear (CSKD student)",
        224,
        "10 (AVA, 1-10)",
        "CSKD recipe with a ViT-Tiny student",
        "AVA's terms (research)",
        "docs/training.md: the paper's recipe (not yet trained: needs GPUs and AVA)",
    ),
)


def list_models(kind: str | None = None) -> list[dict]:
    """The known models as dicts (id, kind, architecture, input size, bins, source, licence, how), optionally of one
    kind ("converted" or "recipe")."""
    return [asdict(model) for model in KNOWN_MODELS if kind is None or model.kind == kind]


def models_table(kind: str | None = None) -> str:
    """`list_models` as a Markdown table."""
    columns = ("model_id", "kind", "architecture", "input_size", "bins", "source", "licence", "how")
    rows = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    rows += ["| " + " | ".join(str(model[column]) for column in columns) + " |" for model in list_models(kind)]
    return "\n".join(rows)


__all__ = ["KNOWN_MODELS", "KnownModel", "list_models", "models_table"]
