"""CSKD image aesthetics models: a timm backbone with a score-distribution head (NIMA-style) or an alignment projector.

This folder is copied to the Hub for `trust_remote_code=True`, so it imports only torch, timm, transformers and its
siblings. The maths the models need (EMD of eq. 2, the alignment loss of eq. 1, distribution moments) lives here and
`cskd_hf.losses` re-exports it.
"""

import copy
from dataclasses import dataclass

import timm
import torch
from safetensors import SafetensorError
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.utils import ModelOutput, logging

from .configuration_cskd import CSKDConfig, check_problem_type

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


def alignment_loss(
    teacher_embeds: list[torch.Tensor], student_embeds: list[torch.Tensor], weights: list[float] | None = None
) -> torch.Tensor:
    """Eq. 1's loss over one or several teachers: `sum_t w_t * mean_batch(1 - cos(x_t, proj_t(x)))`.

    Args:
        teacher_embeds: one `(batch, dim_t)` embedding per teacher (the targets, cast to the student's dtype).
        student_embeds: the student's projection for each teacher, in the same order.
        weights: one weight per teacher (default: 1 each).
    """
    weights = weights or [1.0] * len(teacher_embeds)
    return sum(
        weight * cosine_alignment_loss(teacher.to(student.dtype), student).mean()
        for weight, teacher, student in zip(weights, teacher_embeds, student_embeds, strict=True)
    )


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
        hidden_states: with `output_hidden_states`, the output of each feature stage of the backbone (timm's
            `feature_info` modules) as computed: feature maps `(batch, channels, height, width)` for CNNs, token
            sequences `(batch, tokens, width)` for ViT blocks.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class AestheticScoringOutput(ModelOutput):
    """
    Args:
        loss: mean EMD (eq. 2) against `labels`, when they are given.
        logits: `(batch, num_labels)`: the bins' unnormalised scores, or a scalar head's score `(batch, 1)`.
        probabilities: `(batch, num_bins)` predicted vote distribution (the softmax of a distribution head's
            `logits`; a scalar head's discretised Gaussian around its score).
        mean_score: `(batch,)` mean of the distribution in score units (e.g. 1..10 for AVA).
        std_score: `(batch,)` standard deviation of the distribution in score units.
        pooler_output: `(batch, feature_size)` pooled backbone features.
        hidden_states: with `output_hidden_states`, the backbone's stage or block outputs (see `CSKDModelOutput`).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    probabilities: torch.FloatTensor | None = None
    mean_score: torch.FloatTensor | None = None
    std_score: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class FeatureAlignmentOutput(ModelOutput):
    """
    Args:
        loss: mean alignment loss (eq. 1) against `teacher_embeds`, when they are given.
        embeddings: `(batch, projection_dim)` projected features, in the teacher's embedding space (with several
            teachers, a tuple with one per teacher).
        pooler_output: `(batch, feature_size)` pooled backbone features (what phase II keeps).
        hidden_states: with `output_hidden_states`, the backbone's stage or block outputs (see `CSKDModelOutput`).
    """

    loss: torch.FloatTensor | None = None
    embeddings: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


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

    def forward_intermediates(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The last hidden state and the output of each encoder layer (`(batch, tokens, width)`)."""
        outputs = self.vision_model(pixel_values=pixel_values, output_hidden_states=True)
        return outputs.last_hidden_state, list(outputs.hidden_states[1:])  # [0] is the embeddings

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        if enable:
            self.gradient_checkpointing_enable()
        else:
            self.gradient_checkpointing_disable()


def create_backbone(config: CSKDConfig) -> nn.Module:
    """The backbone a config describes, with its library's own random initialisation (weights come from
    `load_backbone_weights`)."""
    if config.backbone_type == "clip":
        return ClipVisionBackbone(CLIPVisionConfig(**config.clip_vision_config))
    return without_pre_logits(
        timm.create_model(config.architecture, pretrained=False, num_classes=0, **timm_model_kwargs(config)), config
    )


def without_pre_logits(backbone: nn.Module, config: CSKDConfig) -> nn.Module:
    """With `config.backbone_pre_logits=False`, drop the pre-logits layers timm runs between the feature map and its
    pooling (VGG's fc6 / fc7, 120M parameters): the pooled features are then the feature map's average."""
    if not config.backbone_pre_logits and isinstance(getattr(backbone, "pre_logits", None), nn.Module):
        backbone.pre_logits = nn.Identity()
        backbone.head_hidden_size = backbone.num_features
    return backbone


def backbone_feature_size(backbone: nn.Module) -> int:
    """Size of the pooled features of a timm model created with `num_classes=0`."""
    return getattr(backbone, "head_hidden_size", None) or backbone.num_features


def stage_outputs(backbone: nn.Module, pixel_values: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """`forward_features`, and the output of each of the backbone's feature stages (timm's `feature_info` modules:
    ResNet stages, ViT blocks as `(batch, tokens, width)`), as computed: tensors on the path to the output, so that
    they get gradients (timm's `forward_intermediates` returns reshaped copies of some)."""
    names = [info["module"] for info in getattr(backbone, "feature_info", None) or []]
    if not names:
        raise ValueError(f"`output_hidden_states` needs timm's `feature_info`, which {type(backbone).__name__} lacks")
    outputs: list[torch.Tensor] = []
    hooks = [
        backbone.get_submodule(name).register_forward_hook(lambda module, args, output: outputs.append(output))
        for name in names
    ]
    try:
        last_hidden_state = backbone.forward_features(pixel_values)
    finally:  # not left in place: activation checkpointing re-runs the blocks during backward
        for hook in hooks:
            hook.remove()
    return last_hidden_state, outputs


def checkpointable_blocks(backbone: nn.Module) -> list[nn.Module]:
    """The repeated blocks of a timm backbone, where activation checkpointing cuts the graph: the members of the
    container holding each feature stage (ViT blocks, MobileNet/EfficientNet stages), else the stages themselves
    (ResNet layers). Modules without parameters (a stem's activation) are left out."""
    blocks: dict[int, nn.Module] = {}
    for info in getattr(backbone, "feature_info", None) or []:
        parent_name, _, _ = info["module"].rpartition(".")
        parent = backbone.get_submodule(parent_name) if parent_name else None
        members = list(parent.children()) if isinstance(parent, (nn.Sequential, nn.ModuleList)) else []
        for module in members or [backbone.get_submodule(info["module"])]:
            if any(True for _ in module.parameters()):
                blocks[id(module)] = module
    return list(blocks.values())


def enable_transformers_checkpointing(backbone: nn.Module) -> None:
    """Give each block of a timm backbone transformers' `GradientCheckpointingLayer` behaviour, in place.

    Each block's class becomes a subclass of its own class and `GradientCheckpointingLayer`: weights, names and
    forward are unchanged, and `model.activation_checkpointing_enable(...)` then checkpoints the blocks with
    transformers' own function (`use_reentrant`, `every_n_layers`, `offload`) instead of timm's fixed one.
    """
    for block in checkpointable_blocks(backbone):
        if not isinstance(block, GradientCheckpointingLayer):
            block.__class__ = checkpointing_class(type(block))


def checkpointing_class(cls: type) -> type:
    """`cls` with transformers' checkpointing behaviour (which wraps its `forward`): one class per timm class."""
    if cls not in _CHECKPOINTING_CLASSES:
        namespace = {"__module__": cls.__module__, "__reduce_ex__": _reduce_checkpointing_block}
        _CHECKPOINTING_CLASSES[cls] = type(cls.__name__, (GradientCheckpointingLayer, cls), namespace)
    return _CHECKPOINTING_CLASSES[cls]


def _reduce_checkpointing_block(self, protocol):
    # A class made at run time cannot be found by name: pickle the block as its timm class plus the behaviour.
    reduced = nn.Module.__reduce_ex__(self, protocol)
    return (new_checkpointing_block, (type(self).__mro__[2],), *reduced[2:])


def new_checkpointing_block(cls: type) -> nn.Module:
    return object.__new__(checkpointing_class(cls))


_CHECKPOINTING_CLASSES: dict[type, type] = {}


class MismatchedWeightsError(RuntimeError):
    """Weights whose shapes differ from what the config builds: transformers' `RuntimeError`, naming the folder."""


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
    # their `backbone.*` keys and load into each other; `base_model` is a `CSKDModel` over that backbone.
    base_model_prefix = "backbone"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    # Through transformers' `GradientCheckpointingLayer` (see `enable_transformers_checkpointing`); an instance whose
    # backbone has no block to cut at says so in `post_init`, and enabling it then raises transformers' own error.
    supports_gradient_checkpointing = True

    def __init__(self, config: CSKDConfig):
        super().__init__(config)
        # Never downloads: ImageNet weights come in through `load_backbone_weights` (called by `from_config`).
        self.backbone = create_backbone(config)
        if config.backbone_type == "timm":
            enable_transformers_checkpointing(self.backbone)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        try:
            return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        except SafetensorError as error:  # safetensors' own message names neither the folder nor the file
            raise OSError(
                f"{pretrained_model_name_or_path}: a weights file is damaged (cut short, or not safetensors): {error}"
            ) from error
        except RuntimeError as error:
            if "ignore_mismatched_sizes" not in str(error):
                raise
            raise MismatchedWeightsError(
                f"{pretrained_model_name_or_path}: weights of other shapes than config.json says (e.g. its bins and "
                f"the head's); {error}"
            ) from error

    def post_init(self):
        super().post_init()
        # CLIP's encoder layers are transformers' own; a timm backbone without feature stages has no block to cut at.
        self.supports_gradient_checkpointing = any(
            isinstance(module, GradientCheckpointingLayer) for module in self.backbone.modules()
        )

    @property
    def base_model(self) -> "CSKDModel":
        """transformers' base model: the backbone as a `CSKDModel` sharing this model's weights (so
        `model.base_model.save_pretrained(...)` writes a base checkpoint any CSKD class loads)."""
        if isinstance(self, CSKDModel):
            return self
        base = self.__dict__.get("_base_model")  # kept out of the module tree, so its backbone is not counted twice
        if base is None or base.backbone is not self.backbone:
            # Built on the meta device, then given this model's backbone; its config is a copy, so that neither its
            # `post_init` nor its `save_pretrained` (which records `architectures`) changes this model's.
            with torch.device("meta"):
                base = CSKDModel(copy.deepcopy(self.config))
            base.backbone = self.backbone
            self.__dict__["_base_model"] = base
        return base

    def _initialize_weights(self, module: nn.Module, is_custom_code: bool = False):
        # The backbone's root module holds no tensor of its own, which transformers reads, for remote code, as
        # "already initialised"; it is where `_init_weights` initialises the whole backbone.
        super()._initialize_weights(module, is_custom_code=is_custom_code and module is not self.backbone)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        """Initialise our head and projector layers, and whatever of the backbone was not loaded, as timm would.

        transformers runs this over every module, including after `from_pretrained` has filled the weights; the `init`
        helpers skip every tensor already loaded, so a loaded backbone stays bit-identical. It is called per module,
        and not at all for parameter-less containers, hence the `HeadLinear` marker class.
        """
        if isinstance(module, HeadLinear):
            init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
            init.zeros_(module.bias)
        elif module is self.backbone and not isinstance(module, PreTrainedModel):
            self._init_backbone_as_timm()

    def _init_backbone_as_timm(self) -> None:
        """Copy timm's own initialisation of the architecture into every backbone tensor not loaded from a checkpoint
        (parameters and buffers alike: BatchNorm statistics, position embeddings, relative position indices).

        A new model draws its backbone here, from the random state of this moment, like every other weight, so a
        model made with `__init__` and one loaded with all keys missing are equal under the same seed.
        """
        tensors = dict(self.backbone.named_parameters()) | dict(self.backbone.named_buffers())
        pending = {
            name: tensor for name, tensor in tensors.items() if not getattr(tensor, "_is_hf_initialized", False)
        }
        if not pending:
            return
        reference = create_backbone(self.config)
        initialised = dict(reference.named_parameters()) | dict(reference.named_buffers())
        for name, tensor in pending.items():
            init.copy_(tensor, initialised[name])

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
        pretrained = without_pre_logits(pretrained, self.config)
        self.backbone.load_state_dict(pretrained.state_dict())
        logger.info(f"Loaded {self.config.architecture} backbone weights from {checkpoint_path or 'timm'}")

    @property
    def feature_size(self) -> int:
        return backbone_feature_size(self.backbone)

    def pooled_features(
        self, pixel_values: torch.Tensor, output_hidden_states: bool | list[int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...] | None]:
        """The backbone's feature map, its pooled features (timm's own pooling and final norm) and, when asked, the
        output of each stage or block (`output_hidden_states`: True for all, or a list of indices)."""
        pixel_values = pixel_values.to(dtype=self.dtype)
        hidden_states = None
        if not output_hidden_states:
            last_hidden_state = self.backbone.forward_features(pixel_values)
        elif isinstance(self.backbone, ClipVisionBackbone):
            last_hidden_state, hidden_states = self.backbone.forward_intermediates(pixel_values)
        else:
            last_hidden_state, hidden_states = stage_outputs(self.backbone, pixel_values)
        if isinstance(output_hidden_states, (list, tuple)):
            hidden_states = [hidden_states[index] for index in output_hidden_states]
        hidden_states = tuple(hidden_states) if hidden_states is not None else None
        return last_hidden_state, self.backbone.forward_head(last_hidden_state, pre_logits=True), hidden_states

    def _output_flags(
        self, output_hidden_states: bool | list[int] | None, output_attentions: bool | None, return_dict: bool | None
    ) -> tuple[bool | list[int], bool]:
        if output_attentions or (output_attentions is None and self.config.output_attentions):
            raise ValueError("CSKD models do not return attentions (timm backbones do not expose them)")
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        return output_hidden_states, return_dict if return_dict is not None else self.config.return_dict


class CSKDModel(CSKDPreTrainedModel):
    """The bare backbone: pooled image features, as used for alignment and feature analysis."""

    def __init__(self, config: CSKDConfig):
        super().__init__(config)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: bool | list[int] | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
    ) -> CSKDModelOutput | tuple:
        r"""
        output_hidden_states: return the output of every stage or block of the backbone, or of those at these indices.
        """
        output_hidden_states, return_dict = self._output_flags(output_hidden_states, output_attentions, return_dict)
        last_hidden_state, pooler_output, hidden_states = self.pooled_features(pixel_values, output_hidden_states)
        output = CSKDModelOutput(
            last_hidden_state=last_hidden_state, pooler_output=pooler_output, hidden_states=hidden_states
        )
        return output if return_dict else output.to_tuple()


def scoring_loss(
    labels: torch.Tensor, probabilities: torch.Tensor, mean_score: torch.Tensor, config: CSKDConfig
) -> torch.Tensor:
    """The loss of a scoring model against labels in any of the three forms a user of the Auto classes has:

    - vote distributions `(batch, num_bins)`: the mean EMD of eq. 2 (the paper's loss; `problem_type=None`);
    - bin indices `(batch,)` of an integer dtype, one vote per image: the EMD to that one-hot distribution, which keeps
      the bins' order (`problem_type="single_label_classification"`, or inferred from the dtype);
    - mean scores `(batch,)` or `(batch, 1)` in score units: the mean squared error of `mean_score`
      (`problem_type="regression"`, or inferred from a float dtype).

    The forms do not depend on the head: a one-label (scalar) model takes all three, its distribution being the
    Gaussian around its score.
    """
    batch_size, num_bins = probabilities.shape
    problem_type = config.problem_type
    if problem_type is None:
        if labels.shape == probabilities.shape and labels.is_floating_point():
            problem_type = "distribution"
        elif labels.dim() == 1 and not labels.is_floating_point():
            problem_type = "single_label_classification"
        elif labels.is_floating_point() and labels.reshape(-1).shape == (batch_size,):
            problem_type = "regression"
    if problem_type == "distribution":
        return earth_movers_distance(probabilities, labels.to(probabilities.dtype), r=config.emd_r).mean()
    if problem_type == "single_label_classification" and labels.shape == (batch_size,):
        if labels.is_floating_point() or labels.min() < 0 or labels.max() >= num_bins:
            raise ValueError(f"bin indices must be integers in [0, {num_bins}), got {labels.tolist()}")
        one_hot = nn.functional.one_hot(labels.long(), num_bins).to(probabilities.dtype)
        return earth_movers_distance(probabilities, one_hot, r=config.emd_r).mean()
    if problem_type == "regression" and labels.numel() == batch_size:
        return nn.functional.mse_loss(mean_score, labels.reshape(-1).to(mean_score.dtype))
    raise ValueError(
        f"`labels` of shape {tuple(labels.shape)} and dtype {labels.dtype} do not fit "
        f"problem_type={config.problem_type!r}: give vote distributions of shape (batch, num_bins) = "
        f"({batch_size}, {num_bins}), integer bin indices ({batch_size},) or mean scores ({batch_size},)"
    )


class CSKDForAestheticScoring(CSKDPreTrainedModel):
    """Backbone + MLP head predicting the distribution of votes over score bins (NIMA / CSKD teacher and student), or
    the mean score itself (`score_head="scalar"`: the converted LAION predictor), turned into a distribution.

    Loading a `CSKDForFeatureAlignment` checkpoint keeps its aligned backbone and initialises a fresh head, which is
    how phase I feeds phase II. `from_pretrained(checkpoint, num_labels=N, ignore_mismatched_sizes=True)` re-heads a
    model for N bins (`num_labels` is `num_bins`), or, with `num_labels=1`, as a scalar (regression) model.
    """

    def __init__(self, config: CSKDConfig):
        check_problem_type(config.problem_type)  # also when it was set after the config was built
        super().__init__(config)
        outputs = 1 if config.score_head == "scalar" else config.num_bins
        self.head = CSKDScoreHead(self.feature_size, config.head_hidden_sizes, outputs, config.head_dropout)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | list[int] | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
    ) -> AestheticScoringOutput | tuple:
        r"""
        labels: vote distributions `(batch, num_bins)` (rows sum to 1), integer bin indices `(batch,)` or mean scores
            `(batch,)`; see `scoring_loss` for the loss each gives.
        output_hidden_states: return the output of every stage or block of the backbone, or of those at these indices.
        """
        check_problem_type(self.config.problem_type)
        output_hidden_states, return_dict = self._output_flags(output_hidden_states, output_attentions, return_dict)
        _, pooler_output, hidden_states = self.pooled_features(pixel_values, output_hidden_states)
        features = nn.functional.normalize(pooler_output, dim=-1) if self.config.normalize_features else pooler_output
        bin_scores = torch.tensor(self.config.bin_scores, device=pooler_output.device, dtype=torch.float32)
        if self.config.score_head == "scalar":
            logits = self.head(features)
            scalar = logits[:, 0].float()
            gaussian_logits = -((bin_scores - scalar[:, None]) ** 2) / (2 * self.config.scalar_spread**2)
            probabilities = gaussian_logits.softmax(dim=-1)
            mean_score, std_score = scalar, distribution_mean_std(probabilities, bin_scores)[1]
        else:
            logits = self.head(features)
            probabilities = logits.float().softmax(dim=-1)
            mean_score, std_score = distribution_mean_std(probabilities, bin_scores)
        loss = None
        if labels is not None:
            loss = scoring_loss(labels, probabilities, mean_score, self.config)
        output = AestheticScoringOutput(
            loss=loss,
            logits=logits,
            probabilities=probabilities,
            mean_score=mean_score,
            std_score=std_score,
            pooler_output=pooler_output,
            hidden_states=hidden_states,
        )
        return output if return_dict else output.to_tuple()


class CSKDForFeatureAlignment(CSKDPreTrainedModel):
    """Backbone + projector aligned to a frozen teacher's embedding (phase I, CLIP-based feature alignment).

    With a list `config.projection_dim`, one projector per teacher (`projectors`), the losses summed with
    `config.alignment_weights`: multi-teacher CFA, a two-stage variant inspired by Hou et al. (2022), whose own method
    is the joint mode (`training.objectives.JointAlignment`).
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
        output_hidden_states: bool | list[int] | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
    ) -> FeatureAlignmentOutput | tuple:
        r"""
        teacher_embeds: `(batch, projection_dim)` target embeddings (CLIP's CLS embedding), for the loss of eq. 1;
            with several teachers, a list of them, one per teacher.
        output_hidden_states: return the output of every stage or block of the backbone, or of those at these indices.
        """
        output_hidden_states, return_dict = self._output_flags(output_hidden_states, output_attentions, return_dict)
        _, pooler_output, hidden_states = self.pooled_features(pixel_values, output_hidden_states)
        projectors = [self.projector] if self.num_teachers == 1 else self.projectors
        per_teacher = [projector(pooler_output) for projector in projectors]
        embeddings = per_teacher[0] if self.num_teachers == 1 else tuple(per_teacher)

        loss = None
        if teacher_embeds is not None:
            targets = [teacher_embeds] if self.num_teachers == 1 else teacher_embeds
            if len(targets) != self.num_teachers:
                raise ValueError(f"got {len(targets)} teacher embeddings for {self.num_teachers} teachers")
            loss = alignment_loss(targets, per_teacher, self.config.alignment_weights)
        output = FeatureAlignmentOutput(
            loss=loss, embeddings=embeddings, pooler_output=pooler_output, hidden_states=hidden_states
        )
        return output if return_dict else output.to_tuple()


__all__ = [
    "AestheticScoringOutput",
    "CSKDForAestheticScoring",
    "CSKDForFeatureAlignment",
    "CSKDModel",
    "CSKDModelOutput",
    "CSKDPreTrainedModel",
    "FeatureAlignmentOutput",
    "MismatchedWeightsError",
    "alignment_loss",
    "cosine_alignment_loss",
    "distribution_mean_std",
    "earth_movers_distance",
    "scoring_loss",
]
