"""Configuration of CSKD image aesthetics models (a timm backbone with a score-distribution head or a projector)."""

import inspect
from pathlib import Path
from typing import Any

from transformers import PretrainedConfig

BACKBONE_TYPES = ("timm", "clip")
SCORE_HEADS = ("distribution", "scalar")
DEFAULT_NUM_BINS = 10  # AVA's ten score bins


SCALAR_LABEL = "score"
SCALAR_ID2LABEL = {0: SCALAR_LABEL}  # a scalar head's one label: its logit is the score


PROBLEM_TYPES = (None, "regression", "single_label_classification")


def check_problem_type(problem_type: str | None) -> None:
    """Refuse `"multi_label_classification"` (the bins are ordered and their probabilities sum to one) and any other
    value than `PROBLEM_TYPES`."""
    if problem_type not in (*PROBLEM_TYPES, "multi_label_classification"):
        raise ValueError(f"`problem_type` must be one of {PROBLEM_TYPES}, got {problem_type!r}")
    if problem_type == "multi_label_classification":
        raise ValueError(
            "problem_type='multi_label_classification' does not apply to a score distribution: its bins are ordered "
            "and their probabilities sum to one, so they are not independent labels. Use None (vote distributions), "
            "'single_label_classification' (bin indices) or 'regression' (mean scores)"
        )


AUTO_MAP = {
    "AutoConfig": "configuration_cskd.CSKDConfig",
    "AutoModel": "modeling_cskd.CSKDModel",
    "AutoModelForImageClassification": "modeling_cskd.CSKDForAestheticScoring",
}


def check_backbone(architecture: str, backbone_type: str, clip_vision_config: dict | None, image_size: int) -> None:
    if not isinstance(architecture, str) or not architecture:
        raise ValueError(f"`architecture` must be a timm model name, got {architecture!r}")
    if backbone_type not in BACKBONE_TYPES:
        raise ValueError(f"`backbone_type` must be one of {BACKBONE_TYPES}, got {backbone_type!r}")
    if backbone_type == "clip" and not clip_vision_config:
        raise ValueError("`backbone_type='clip'` needs `clip_vision_config` (use CSKDConfig.for_clip)")
    if image_size <= 0:
        raise ValueError(f"`image_size` must be positive, got {image_size}")


def check_labels(score_head: str, num_labels: int | None, num_bins: int, bin_scores: list[float]) -> None:
    """The head, the number of labels asked for (if any) and the bins must agree."""
    if score_head not in SCORE_HEADS:
        raise ValueError(f"`score_head` must be one of {SCORE_HEADS}, got {score_head!r}")
    if num_labels is not None and num_labels < 1:
        raise ValueError(f"`num_labels` must be at least 1 (1: a scalar score), got {num_labels}")
    if score_head == "scalar" and num_labels not in (None, 1):
        raise ValueError(f"`score_head='scalar'` has one label (the score), but `num_labels` is {num_labels}")
    if score_head == "distribution" and num_labels is not None and num_labels != num_bins:
        raise ValueError(f"`num_labels` ({num_labels}) is the number of bins, but `num_bins` is {num_bins}")
    if num_bins < 2:
        raise ValueError(f"`num_bins` must be at least 2 to form a distribution, got {num_bins}")
    if len(bin_scores) != num_bins:
        raise ValueError(f"`bin_scores` has {len(bin_scores)} values but `num_bins` is {num_bins}")
    if any(b <= a for a, b in zip(bin_scores, bin_scores[1:])):
        raise ValueError(f"`bin_scores` must be strictly increasing, got {bin_scores}")


def check_head(head_hidden_sizes: list[int], head_dropout: float, emd_r: float, scalar_spread: float) -> None:
    if any(h <= 0 for h in head_hidden_sizes):
        raise ValueError(f"`head_hidden_sizes` must be positive, got {head_hidden_sizes}")
    if not 0.0 <= head_dropout < 1.0:
        raise ValueError(f"`head_dropout` must be in [0, 1), got {head_dropout}")
    if emd_r <= 0:
        raise ValueError(f"`emd_r` must be positive, got {emd_r}")
    if scalar_spread <= 0:
        raise ValueError(f"`scalar_spread` must be positive, got {scalar_spread}")


def check_projection(
    projection_dim: int | list[int] | None, alignment_weights: list[float] | None, projector_hidden_size: int | None
) -> None:
    dims = projection_dim if isinstance(projection_dim, list) else [projection_dim]
    if projection_dim is not None and (not dims or any(d is None or d <= 0 for d in dims)):
        raise ValueError(f"`projection_dim` must be a positive size, a list of them or None, got {projection_dim}")
    if alignment_weights is not None and (
        len(alignment_weights) != len(dims) or any(w < 0 for w in alignment_weights)
    ):
        raise ValueError(
            f"`alignment_weights` needs one weight >= 0 per teacher ({len(dims)}), got {alignment_weights}"
        )
    if projector_hidden_size is not None and projector_hidden_size <= 0:
        raise ValueError(f"`projector_hidden_size` must be positive or None, got {projector_hidden_size}")


def default_num_bins(
    bin_scores: list[float] | None, id2label: dict | None = None, num_labels: int | None = None
) -> int:
    """The number of bins when `num_bins` is not given: that of `bin_scores`, else of a distribution head's labels
    (`id2label`, `num_labels`), else AVA's ten."""
    if bin_scores is not None:
        return len(bin_scores)
    if id2label is not None:
        return len(id2label)
    return num_labels if num_labels is not None else DEFAULT_NUM_BINS


def single_or_list(projection_dim: int | list[int] | None) -> int | list[int] | None:
    """`projection_dim` as saved: a list of sizes for several teachers, one teacher's size as a number."""
    if isinstance(projection_dim, (list, tuple)):
        sizes = [int(d) for d in projection_dim]
        return sizes[0] if len(sizes) == 1 else sizes
    return projection_dim


def bin_labels(bin_scores: list[float]) -> dict[int, str]:
    """`id2label` of a score distribution: each bin is labelled by its score ("1", "2", ... "10")."""
    return {i: f"{score:g}" for i, score in enumerate(bin_scores)}


class CSKDConfig(PretrainedConfig):
    r"""
    Configuration for [`CSKDModel`], [`CSKDForAestheticScoring`] and [`CSKDForFeatureAlignment`].

    The backbone is any timm architecture, created without its classifier (`num_classes=0`); its pooled features feed
    either an MLP head over the score bins (NIMA-style distribution prediction) or an MLP projector onto a teacher's
    embedding space (CLIP-based feature alignment, phase I of CSKD).

    Args:
        architecture: timm model name, e.g. `"mobilenetv2_100"`, `"vit_tiny_patch16_224"`,
            `"swin_base_patch4_window7_224"` (timm's CLIP towers such as `"vit_base_patch16_clip_224.openai"` too);
            with `backbone_type="clip"`, the name of the CLIP checkpoint the tower came from.
        backbone_type: `"timm"`, or `"clip"` for a transformers CLIP image tower (`clip_vision_config`), whose
            pooled features are CLIP's image embedding: the backbone of the CLIP linear probe and of direct CLIP
            fine-tuning (Hentschel et al., 2022). `CSKDConfig.for_clip(checkpoint)` fills both fields.
        clip_vision_config: the `CLIPVisionConfig` (as a dict) of a `"clip"` backbone.
        model_args: extra keyword arguments for `timm.create_model` (e.g. `{"drop_path_rate": 0.1}`).
        backbone_pretrained: load timm's ImageNet weights for `architecture` when the model is created with
            `from_config` (this downloads). Saved models carry their weights in `model.safetensors` and never download.
        backbone_checkpoint_path: a local timm checkpoint file (or CLIP folder) to load into the backbone when the
            model is created with `from_config` (the offline alternative to `backbone_pretrained`). It is a path on
            one machine, needed only then: it is not saved (the saved weights hold what it gave).
        image_size: side of the square model input, in pixels.
        num_bins: number of score bins of the predicted distribution (10 for AVA, 9 for PARA, 5 for AADB); defaults
            to the length of `bin_scores`, else of `id2label` or `num_labels` when given, else 10.
        bin_scores: the score value of each bin, increasing; defaults to `1, 2, ..., num_bins`.
        head_hidden_sizes: hidden layer sizes of the scoring head; empty gives NIMA's dropout + linear head.
        head_dropout: dropout before each linear layer of the head (NIMA uses 0.75).
        projection_dim: output size of the alignment projector (the teacher's embedding size, 1024 for the CLS token
            of CLIP ViT-L/14); `None` means the model has no projector. A list gives one projector per teacher
            (multi-teacher CFA, a variant inspired by Hou et al. 2022).
        alignment_weights: with several teachers, the weight of each teacher's alignment loss (default: all 1).
        projector_hidden_size: hidden size of the two-layer projector; defaults to the backbone's feature size.
        emd_r: the exponent r of the EMD loss (eq. 2 of the CSKD paper).
        normalize_features: L2-normalise the pooled features before the scoring head (the LAION aesthetic predictor
            reads CLIP's unit-length image embedding).
        score_head: `"distribution"` (the head predicts the bins' logits) or `"scalar"` (it predicts the mean score
            `s`, as the LAION predictor does; the distribution is then the discretised Gaussian
            `p_i ∝ exp(-(b_i - s)² / 2σ²)` with σ = `scalar_spread`, so that the model can teach SKD, while the mean
            score stays `s` exactly; cut at the scale's ends, that distribution's own mean leans inward there).
            Defaults to `"scalar"` when `num_labels=1`, else `"distribution"`. A scalar model is a one-label model.
        scalar_spread: σ of that Gaussian, on the bins' scale.
        backbone_pre_logits: keep the layers timm runs between a backbone's feature map and its pooling (VGG's fc6
            and fc7 as convolutions); without them the pooled features are the feature map's average (pyiqa's
            NIMA-VGG16). Other architectures have none and are unaffected.
        initializer_range: std of the normal initialisation of head and projector weights.

    Other Parameters:
        num_labels (int): transformers' name for the width of `logits`. With a distribution head it is `num_bins`:
            setting it re-bins the config (scores `1..num_labels`), which with `from_pretrained(...,
            num_labels=N, ignore_mismatched_sizes=True)` re-heads a model. `num_labels=1` means regression, as in
            transformers: the scalar head (`score_head="scalar"`), whose one logit is the score; its distribution
            still spreads over `num_bins` bins (default 10) and `id2label` is `{0: "score"}`.
        problem_type (str | None): what the scoring model's `labels` are, whatever its head: `None` for vote
            distributions `(batch, num_bins)` (the EMD of eq. 2), integer bin indices or float mean scores `(batch,)`
            being recognised by their dtype; `"single_label_classification"` for bin indices (EMD to the one-hot
            distribution) or `"regression"` for mean scores (MSE of the predicted mean). Bin indices index the bins,
            not the logits, so a one-label model takes them too (transformers refuses that pair for its cross-entropy
            heads, whose classes are the logits). `"multi_label_classification"` is refused: the bins are ordered and
            their probabilities sum to one, so they are not independent labels.
    """

    model_type = "cskd"

    def __init__(
        self,
        architecture: str = "mobilenetv2_100",
        backbone_type: str = "timm",
        clip_vision_config: dict[str, Any] | None = None,
        model_args: dict[str, Any] | None = None,
        backbone_pretrained: bool = False,
        backbone_checkpoint_path: str | None = None,
        image_size: int = 224,
        num_bins: int | None = None,
        bin_scores: list[float] | None = None,
        head_hidden_sizes: list[int] | None = None,
        head_dropout: float = 0.75,
        projection_dim: int | list[int] | None = None,
        projector_hidden_size: int | None = None,
        alignment_weights: list[float] | None = None,
        emd_r: float = 2.0,
        initializer_range: float = 0.02,
        normalize_features: bool = False,
        score_head: str | None = None,
        scalar_spread: float = 1.4,
        backbone_pre_logits: bool = True,
        **kwargs,
    ):
        num_labels = kwargs.pop("num_labels", None)
        score_head = score_head or ("scalar" if num_labels == 1 else "distribution")
        if score_head == "distribution" and num_bins is None:
            num_bins = default_num_bins(bin_scores, kwargs.get("id2label"), num_labels)
        elif score_head != "distribution":  # one label, the score; configs saved before listed the bins as labels
            num_bins = default_num_bins(bin_scores) if num_bins is None else num_bins
            kwargs["id2label"], kwargs["label2id"] = dict(SCALAR_ID2LABEL), {SCALAR_LABEL: 0}
        self.architecture = architecture
        self.backbone_type = backbone_type
        self.clip_vision_config = dict(clip_vision_config) if clip_vision_config else None
        self.model_args = dict(model_args or {})
        self.backbone_pretrained = backbone_pretrained
        self.backbone_checkpoint_path = backbone_checkpoint_path
        self.image_size = image_size
        self.num_bins = num_bins
        self.bin_scores = [float(s) for s in (bin_scores if bin_scores is not None else range(1, num_bins + 1))]
        self.head_hidden_sizes = [int(h) for h in (head_hidden_sizes or [])]
        self.head_dropout = head_dropout
        self.projection_dim = single_or_list(projection_dim)
        self.projector_hidden_size = projector_hidden_size
        self.alignment_weights = None if alignment_weights is None else [float(w) for w in alignment_weights]
        self.emd_r = emd_r
        self.initializer_range = initializer_range
        self.normalize_features = normalize_features
        self.score_head = score_head
        self.scalar_spread = scalar_spread
        self.backbone_pre_logits = backbone_pre_logits
        # A distribution head's labels are its bins, so `pipeline("image-classification")` shows the predicted vote
        # distribution (a scalar head's one label is replaced above).
        kwargs.setdefault("id2label", bin_labels(self.bin_scores))
        kwargs.setdefault("label2id", {label: i for i, label in bin_labels(self.bin_scores).items()})
        # Lets a folder saved by any CSKD class load with `trust_remote_code=True` where cskd_hf is not installed.
        kwargs.setdefault("auto_map", dict(AUTO_MAP))
        # Set after the base class, whose check refuses single-label classification with one label: its classes are
        # the logits there, while ours are the bins (see `problem_type` above).
        problem_type = kwargs.pop("problem_type", None)
        super().__init__(**kwargs)
        self.problem_type = problem_type
        self.validate(num_labels)

    def validate(self, num_labels: int | None = None) -> None:
        """Check every field, raising `ValueError` naming the first bad one. Runs at construction (with the
        `num_labels` asked for) and, as transformers does, before saving."""
        if hasattr(super(), "validate"):
            super().validate()
        check_backbone(self.architecture, self.backbone_type, self.clip_vision_config, self.image_size)
        check_labels(self.score_head, num_labels, self.num_bins, self.bin_scores)
        check_problem_type(self.problem_type)
        check_head(self.head_hidden_sizes, self.head_dropout, self.emd_r, self.scalar_spread)
        check_projection(self.projection_dim, self.alignment_weights, self.projector_hidden_size)
        if len(self.id2label) != self.num_labels:
            raise ValueError(f"`id2label` has {len(self.id2label)} entries but the model has {self.num_labels} labels")

    @property
    def num_labels(self) -> int:
        """The width of `logits`: 1 for the scalar head, else `num_bins`."""
        return 1 if self.score_head == "scalar" else self.num_bins

    @num_labels.setter
    def num_labels(self, num_labels: int) -> None:
        """1: the scalar head over the current bins (regression); N >= 2: a distribution head over N bins scored
        `1..N`, labelled by their scores (as transformers re-heads)."""
        if num_labels < 1:
            raise ValueError(f"`num_labels` must be at least 1 (1: a scalar score), got {num_labels}")
        labelled = len(getattr(self, "id2label", None) or {})
        if num_labels == getattr(self, "num_labels", None) and labelled == num_labels:
            return
        if num_labels == 1:
            self.score_head = "scalar"
            self.id2label, self.label2id = dict(SCALAR_ID2LABEL), {SCALAR_LABEL: 0}
            return
        self.score_head = "distribution"
        if num_labels != getattr(self, "num_bins", None):  # a scalar head's own bins stay when their count is kept
            self.num_bins = num_labels
            self.bin_scores = [float(score) for score in range(1, num_labels + 1)]
        self.id2label = bin_labels(self.bin_scores)
        self.label2id = {label: i for i, label in self.id2label.items()}

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        # A path on the machine that created the model: its weights are saved with the model, and the path must not
        # travel to the Hub.
        output.pop("backbone_checkpoint_path", None)
        return output

    @classmethod
    def for_clip(cls, name_or_path: str, **kwargs) -> "CSKDConfig":
        """A config whose backbone is the image tower of a CLIP checkpoint (a `CLIPModel` or a vision model, Hub id or
        folder), at CLIP's input size; `from_config` then loads the tower's weights from that checkpoint."""
        from transformers import AutoConfig, CLIPConfig

        clip_config = AutoConfig.from_pretrained(name_or_path)
        vision = clip_config.vision_config if isinstance(clip_config, CLIPConfig) else clip_config
        vision_dict = vision.to_dict()
        if isinstance(clip_config, CLIPConfig):  # a full CLIP keeps the projection size at its top level
            vision_dict["projection_dim"] = clip_config.projection_dim
        kwargs.setdefault("image_size", vision.image_size)
        kwargs.setdefault("backbone_checkpoint_path", str(name_or_path))
        # A Hub id names the tower; a local folder is named by its last part, never by its path on this machine.
        local = Path(name_or_path).expanduser().exists()
        architecture = Path(name_or_path).resolve().name if local else str(name_or_path)
        return cls(architecture=architecture, backbone_type="clip", clip_vision_config=vision_dict, **kwargs)

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs) -> "CSKDConfig":
        """Like `PretrainedConfig.from_dict`, but overrides of our own fields go through `__init__` and its checks.

        This is what makes `CSKDForAestheticScoring.from_pretrained(aligned_dir, num_bins=9, bin_scores=[...])` give a
        consistent config (bins, labels) for a dataset other than the one the checkpoint was saved with.
        """
        config_dict = dict(config_dict)
        own_fields = set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"}
        overrides = {key: kwargs.pop(key) for key in list(kwargs) if key in own_fields}
        num_labels = kwargs.pop("num_labels", None)
        if num_labels is not None and num_labels < 1:
            raise ValueError(f"`num_labels` must be at least 1 (1: a scalar score), got {num_labels}")
        saved_num_labels = 1 if config_dict.get("score_head") == "scalar" else config_dict.get("num_bins")
        if num_labels is not None and num_labels != saved_num_labels:
            # transformers' re-head recipe: `num_labels=N` means N bins, one label the scalar head; a scalar head's
            # own bins stay when their count is kept, as the `num_labels` setter keeps them.
            overrides.setdefault("score_head", "scalar" if num_labels == 1 else "distribution")
            if num_labels > 1 and num_labels != config_dict.get("num_bins"):
                overrides.setdefault("num_bins", num_labels)
        if {"num_bins", "bin_scores", "score_head"} & overrides.keys():
            config_dict.pop("id2label", None)
            config_dict.pop("label2id", None)
            if "num_bins" in overrides and "bin_scores" not in overrides:
                config_dict.pop("bin_scores", None)
        config_dict.update(overrides)
        return super().from_dict(config_dict, **kwargs)


__all__ = ["CSKDConfig"]
