"""CSKD image aesthetics models: a timm backbone with a score-distribution head (NIMA-style) or an alignment projector.

This folder is copied to the Hub for `trust_remote_code=True`, so it imports only torch, timm, transformers and its
siblings. The maths the models need (EMD of eq. 2, the alignment loss of eq. 1, distribution moments) lives here and
`cskd_hf.losses` re-exports it.
"""

from dataclasses import dataclass

import timm
import torch
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection, PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput, logging

from .configuration_cskd import CSKDConfig

logger = logging.get_logger(__name__)


def earth_movers_distance(predicted: torch.Tensor, target: torch.Tensor, r: float = 2.0) -> torch.Tensor:
    """EMD between two batches of distributions over the same ordered bins, eq. 2 of the CSKD paper.

    `EMD(p, q) = ((1/d) * sum_i |CDF_p(i) - CDF_q(i)|^r)^(1/r)`.

    Args:
        predicted: `(batch, d)` probabilities.
        target: `(batch, d)` probabilities.
        r: the norm's exponent (2 in the paper and in NIMA).

    Returns:
        `(batch,)` distances; reduce them as the loss requires.
    """
    if predicted.shape != target.shape:
        raise ValueError(
            f"EMD needs distributions of the same shape, got {tuple(predicted.shape)} and {tuple(target.shape)}"
        )
    cdf_difference = torch.cumsum(predicted, dim=-1) - torch.cumsum(target, dim=-1)
    mean_power = cdf_difference.abs().pow(r).mean(dim=-1)
    # The root's gradient is infinite at 0 (identical distributions); the clamp changes the value by at most 1e-6
    # (r=2) and turns that NaN gradient into 0.
    return mean_power.clamp_min(1e-12).pow(1.0 / r)


def cosine_alignment_loss(
    teacher_embeds: torch.Tensor, student_embeds: torch.Tensor, eps: float = 1e-8
) -> torch.Tensor:
    """Feature-alignment loss of eq. 1: `1 - (x1 . x2) / max(||x1|| * ||x2||, eps)`, per row.

    Unlike `torch.nn.functional.cosine_similarity` in older torch versions, eps bounds the product of the norms, as in
    the paper.

    Returns:
        `(batch,)` losses in [0, 2].
    """
    if teacher_embeds.shape != student_embeds.shape:
        raise ValueError(
            f"Alignment needs embeddings of the same shape, got teacher {tuple(teacher_embeds.shape)} "
            f"and student {tuple(student_embeds.shape)}"
        )
    dot = (teacher_embeds * student_embeds).sum(dim=-1)
    norms = teacher_embeds.norm(dim=-1) * student_embeds.norm(dim=-1)
    return 1.0 - dot / norms.clamp_min(eps)


def distribution_mean_std(probabilities: torch.Tensor, bin_scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation, in score units, of `(batch, d)` distributions over bins valued `bin_scores`."""
    mean = (probabilities * bin_scores).sum(dim=-1)
    variance = (probabilities * (bin_scores - mean.unsqueeze(-1)) ** 2).sum(dim=-1)
    return mean, variance.clamp_min(0.0).sqrt()


@dataclass
class CSKDModelOutput(ModelOutput):
    """
    Args:
        last_hidden_state: the backbone's `forward_features` output (feature map or token sequence).
        pooler_output: `(batch, feature_size)` pooled features, as timm's `forward_head(..., pre_logits=True)`.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None


@dataclass
class AestheticScoringOutput(ModelOutput):
    """
    Args:
        loss: mean EMD (eq. 2) against `labels`, when they are given.
        logits: `(batch, num_bins)` unnormalised scores of the bins.
        probabilities: `(batch, num_bins)` predicted vote distribution (softmax of `logits`).
        mean_score: `(batch,)` mean of the distribution in score units (e.g. 1..10 for AVA).
        std_score: `(batch,)` standard deviation of the distribution in score units.
        pooler_output: `(batch, feature_size)` pooled backbone features.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    probabilities: torch.FloatTensor | None = None
    mean_score: torch.FloatTensor | None = None
    std_score: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None


@dataclass
class FeatureAlignmentOutput(ModelOutput):
    """
    Args:
        loss: mean alignment loss (eq. 1) against `teacher_embeds`, when they are given.
        embeddings: `(batch, projection_dim)` projected features, in the teacher's embedding space (with several
            teachers, a tuple with one per teacher).
        pooler_output: `(batch, feature_size)` pooled backbone features (what phase II keeps).
    """

    loss: torch.FloatTensor | None = None
    embeddings: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None


def timm_model_kwargs(config: CSKDConfig) -> dict:
    """Keyword arguments for `timm.create_model`: `config.model_args`, plus `img_size` for fixed-size models."""
    kwargs = dict(config.model_args)
    pretrained_cfg = timm.get_pretrained_cfg(config.architecture)
    if pretrained_cfg is not None and pretrained_cfg.fixed_input_size:
        if tuple(pretrained_cfg.input_size[-2:]) != (config.image_size, config.image_size):
            kwargs.setdefault("img_size", config.image_size)
    return kwargs


class ClipVisionBackbone(CLIPVisionModelWithProjection):
    """CLIP's image tower behind timm's backbone interface; its pooled features are CLIP's image embedding (the
    post-layer-norm CLS token through the visual projection), as the CLIP baselines use them."""

    @property
    def num_features(self) -> int:
        return self.config.projection_dim

    def forward_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.vision_model(pixel_values=pixel_values).last_hidden_state

    def forward_head(self, last_hidden_state: torch.Tensor, pre_logits: bool = True) -> torch.Tensor:
        return self.visual_projection(self.vision_model.post_layernorm(last_hidden_state[:, 0]))

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        if enable:
            self.gradient_checkpointing_enable()
        else:
            self.gradient_checkpointing_disable()


def create_backbone(config: CSKDConfig) -> nn.Module:
    """The backbone a config describes, randomly initialised (weights come from `load_backbone_weights`)."""
    if config.backbone_type == "clip":
        return ClipVisionBackbone(CLIPVisionConfig(**config.clip_vision_config))
    return timm.create_model(config.architecture, pretrained=False, num_classes=0, **timm_model_kwargs(config))


def backbone_feature_size(backbone: nn.Module) -> int:
    """Size of the pooled features of a timm model created with `num_classes=0`."""
    return getattr(backbone, "head_hidden_size", None) or backbone.num_features


class HeadLinear(nn.Linear):
    """A linear layer of our head or projector: the only layers `_init_weights` initialises."""


class CSKDScoreHead(nn.Module):
    """MLP from pooled features to bin logits; with no hidden layer it is NIMA's dropout + linear head."""

    def __init__(self, in_features: int, hidden_sizes: list[int], num_bins: int, dropout: float):
        super().__init__()
        layers: list[nn.Module] = []
        for hidden_size in hidden_sizes:
            layers += [nn.Dropout(dropout), HeadLinear(in_features, hidden_size), nn.ReLU()]
            in_features = hidden_size
        layers += [nn.Dropout(dropout), HeadLinear(in_features, num_bins)]
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


class CSKDProjector(nn.Module):
    """Two-layer MLP from pooled features to the teacher's embedding space; dropped after phase I."""

    def __init__(self, in_features: int, hidden_size: int, projection_dim: int):
        super().__init__()
        self.layers = nn.Sequential(
            HeadLinear(in_features, hidden_size), nn.GELU(), HeadLinear(hidden_size, projection_dim)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


class CSKDPreTrainedModel(PreTrainedModel):
    config_class = CSKDConfig
    config: CSKDConfig
    # Every class keeps the timm model under the same attribute, so alignment, scoring and base checkpoints share
    # their `backbone.*` keys and load into each other.
    base_model_prefix = "backbone"
    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def __init__(self, config: CSKDConfig):
        super().__init__(config)
        # Never downloads: ImageNet weights come in through `load_backbone_weights` (called by `from_config`).
        self.backbone = create_backbone(config)

    def post_init(self):
        self.supports_gradient_checkpointing = hasattr(self.backbone, "set_grad_checkpointing")
        super().post_init()

    def _set_gradient_checkpointing(self, enable: bool = True, *args, **kwargs):
        self.backbone.set_grad_checkpointing(enable)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        """Initialise only our own layers; the backbone keeps timm's init or the loaded checkpoint.

        transformers runs this over every module, including after `from_pretrained` has filled the weights, so it
        must not touch backbone parameters (the `init` helpers also skip anything already loaded). It is called per
        module, and not at all for parameter-less containers, hence the `HeadLinear` marker class.
        """
        if isinstance(module, HeadLinear):
            init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
            init.zeros_(module.bias)
        elif hasattr(module, "init_non_persistent_buffers"):
            # Buffers not in the checkpoint (e.g. relative position indices) are left uninitialised by meta loading.
            module.init_non_persistent_buffers()

    @classmethod
    def _from_config(cls, config: CSKDConfig, **kwargs):
        """`AutoModel.from_config(config)`: a new model, with backbone weights when the config asks for them."""
        model = super()._from_config(config, **kwargs)
        model.load_backbone_weights()
        return model

    @classmethod
    def from_config(cls, config: CSKDConfig, **kwargs):
        """A new model from `config`, with ImageNet backbone weights if `backbone_pretrained` or
        `backbone_checkpoint_path` is set (plain `cls(config)` never loads any)."""
        return cls._from_config(config, **kwargs)

    def load_backbone_weights(self) -> None:
        """Load ImageNet weights into the backbone as `config.backbone_checkpoint_path` or `backbone_pretrained` say.

        A local checkpoint file never touches the network; `backbone_pretrained=True` downloads timm's weights.
        Does nothing when neither is set.
        """
        checkpoint_path = self.config.backbone_checkpoint_path
        if not (checkpoint_path or self.config.backbone_pretrained):
            return
        if self.config.backbone_type == "clip":
            vision_config = CLIPVisionConfig(**self.config.clip_vision_config)
            source = checkpoint_path or self.config.architecture
            # A full CLIP checkpoint also holds the text tower: silence the loader's table of keys it skips.
            verbosity = logging.get_verbosity()
            logging.set_verbosity_error()
            try:
                clip = CLIPVisionModelWithProjection.from_pretrained(source, config=vision_config)
            finally:
                logging.set_verbosity(verbosity)
            self.backbone.load_state_dict(clip.state_dict())
            logger.info(f"Loaded the CLIP image tower from {source}")
            return
        overlay = {"file": str(checkpoint_path)} if checkpoint_path else None
        pretrained = timm.create_model(
            self.config.architecture,
            pretrained=True,
            num_classes=0,
            pretrained_cfg_overlay=overlay,
            **timm_model_kwargs(self.config),
        )
        self.backbone.load_state_dict(pretrained.state_dict())
        logger.info(f"Loaded {self.config.architecture} backbone weights from {checkpoint_path or 'timm'}")

    @property
    def feature_size(self) -> int:
        return backbone_feature_size(self.backbone)

    def pooled_features(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The backbone's feature map and its pooled, normalised features (timm's own pooling and final norm)."""
        last_hidden_state = self.backbone.forward_features(pixel_values.to(dtype=self.dtype))
        return last_hidden_state, self.backbone.forward_head(last_hidden_state, pre_logits=True)


class CSKDModel(CSKDPreTrainedModel):
    """The bare backbone: pooled image features, as used for alignment and feature analysis."""

    def __init__(self, config: CSKDConfig):
        super().__init__(config)
        self.post_init()

    def forward(
        self, pixel_values: torch.Tensor, return_dict: bool | None = None, **kwargs
    ) -> CSKDModelOutput | tuple:
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        last_hidden_state, pooler_output = self.pooled_features(pixel_values)
        if not return_dict:
            return (last_hidden_state, pooler_output)
        return CSKDModelOutput(last_hidden_state=last_hidden_state, pooler_output=pooler_output)


class CSKDForAestheticScoring(CSKDPreTrainedModel):
    """Backbone + MLP head predicting the distribution of votes over score bins (NIMA / CSKD teacher and student).

    Loading a `CSKDForFeatureAlignment` checkpoint keeps its aligned backbone and initialises a fresh head, which is
    how phase I feeds phase II.
    """

    def __init__(self, config: CSKDConfig):
        super().__init__(config)
        self.head = CSKDScoreHead(self.feature_size, config.head_hidden_sizes, config.num_bins, config.head_dropout)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> AestheticScoringOutput | tuple:
        r"""
        labels: `(batch, num_bins)` target vote distributions (each row sums to 1); gives the mean EMD loss of eq. 2.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        _, pooler_output = self.pooled_features(pixel_values)
        logits = self.head(pooler_output)
        probabilities = logits.float().softmax(dim=-1)
        bin_scores = torch.tensor(self.config.bin_scores, device=logits.device, dtype=probabilities.dtype)
        mean_score, std_score = distribution_mean_std(probabilities, bin_scores)

        loss = None
        if labels is not None:
            if labels.shape != probabilities.shape:
                raise ValueError(
                    f"`labels` must be vote distributions of shape (batch, num_bins) = {tuple(probabilities.shape)}, "
                    f"got {tuple(labels.shape)}"
                )
            loss = earth_movers_distance(probabilities, labels.to(probabilities.dtype), r=self.config.emd_r).mean()

        if not return_dict:
            output = (logits, probabilities, mean_score, std_score, pooler_output)
            return ((loss,) + output) if loss is not None else output
        return AestheticScoringOutput(
            loss=loss,
            logits=logits,
            probabilities=probabilities,
            mean_score=mean_score,
            std_score=std_score,
            pooler_output=pooler_output,
        )


class CSKDForFeatureAlignment(CSKDPreTrainedModel):
    """Backbone + projector aligned to a frozen teacher's embedding (phase I, CLIP-based feature alignment).

    With a list `config.projection_dim`, one projector per teacher (`projectors`), the losses summed with
    `config.alignment_weights`: multi-teacher feature distillation (Hou et al., 2022).
    """

    def __init__(self, config: CSKDConfig):
        if config.projection_dim is None:
            raise ValueError("CSKDForFeatureAlignment needs `config.projection_dim` (the teacher's embedding size)")
        super().__init__(config)
        hidden_size = config.projector_hidden_size or self.feature_size
        if self.num_teachers == 1:
            self.projector = CSKDProjector(self.feature_size, hidden_size, config.projection_dim)
        else:
            self.projectors = nn.ModuleList(
                CSKDProjector(self.feature_size, hidden_size, dim) for dim in config.projection_dim
            )
        self.post_init()

    @property
    def num_teachers(self) -> int:
        return len(self.config.projection_dim) if isinstance(self.config.projection_dim, list) else 1

    def forward(
        self,
        pixel_values: torch.Tensor,
        teacher_embeds: torch.Tensor | list[torch.Tensor] | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> FeatureAlignmentOutput | tuple:
        r"""
        teacher_embeds: `(batch, projection_dim)` target embeddings (CLIP's CLS embedding), for the loss of eq. 1;
            with several teachers, a list of them, one per teacher.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        _, pooler_output = self.pooled_features(pixel_values)
        projectors = [self.projector] if self.num_teachers == 1 else self.projectors
        per_teacher = [projector(pooler_output) for projector in projectors]
        embeddings = per_teacher[0] if self.num_teachers == 1 else tuple(per_teacher)

        loss = None
        if teacher_embeds is not None:
            targets = [teacher_embeds] if self.num_teachers == 1 else teacher_embeds
            if len(targets) != self.num_teachers:
                raise ValueError(f"got {len(targets)} teacher embeddings for {self.num_teachers} teachers")
            weights = self.config.alignment_weights or [1.0] * self.num_teachers
            loss = sum(
                weight * cosine_alignment_loss(target.to(student.dtype), student).mean()
                for weight, target, student in zip(weights, targets, per_teacher, strict=True)
            )

        if not return_dict:
            output = (embeddings, pooler_output)
            return ((loss,) + output) if loss is not None else output
        return FeatureAlignmentOutput(loss=loss, embeddings=embeddings, pooler_output=pooler_output)


__all__ = [
    "AestheticScoringOutput",
    "CSKDForAestheticScoring",
    "CSKDForFeatureAlignment",
    "CSKDModel",
    "CSKDModelOutput",
    "CSKDPreTrainedModel",
    "FeatureAlignmentOutput",
    "cosine_alignment_loss",
    "distribution_mean_std",
    "earth_movers_distance",
]
