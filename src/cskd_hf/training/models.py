"""The model a phase II run starts from, and how a finished run is saved: `save_pretrained` with its image processor
and a model card."""

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator

from ..hub import model_card, save_card
from ..models.cskd import CSKDConfig, CSKDForAestheticScoring, CSKDImageProcessor, CSKDPreTrainedModel
from .arguments import BackboneArguments, ModelArguments


def build_model(
    model_class: type[CSKDPreTrainedModel],
    args: BackboneArguments,
    new_fields: dict,
    saved_fields: dict | None = None,
) -> CSKDPreTrainedModel:
    """The model a trainer starts from, for both phases (in the spirit of timm's `build_model_with_cfg`).

    Args:
        model_class: `CSKDForAestheticScoring` (phase II) or `CSKDForFeatureAlignment` (phase I).
        args: `--model` (a saved model), else the new backbone: timm's `--architecture`, or with `clip_backbone`
            (phase II only) a CLIP image tower at CLIP's input size; `from_config` loads its weights.
        new_fields: the config fields of a new model's head or projector.
        saved_fields: what changes in a saved model's config (a head for the dataset's bins); weights of other
            shapes are then initialised anew, e.g. the head of a scorer started from a CFA model.
    """
    if args.model:
        if not saved_fields:
            return model_class.from_pretrained(args.model)
        return model_class.from_pretrained(args.model, ignore_mismatched_sizes=True, **saved_fields)
    if getattr(args, "clip_backbone", None):
        return model_class.from_config(CSKDConfig.for_clip(args.clip_backbone, **new_fields))
    config = CSKDConfig(
        architecture=args.architecture,
        image_size=args.image_size,
        backbone_pretrained=args.backbone_pretrained,
        backbone_checkpoint_path=args.backbone_checkpoint_path,
        model_args=args.model_args,
        **new_fields,
    )
    return model_class.from_config(config)


def scorer_from(args: ModelArguments, bin_scores: list[float]) -> tuple[CSKDForAestheticScoring, CSKDImageProcessor]:
    """Phase II's model, with a head for the dataset's bins (a new one on a saved CFA model), and its processor."""
    head = {"num_bins": len(bin_scores), "bin_scores": bin_scores, "head_hidden_sizes": args.head_hidden_sizes}
    head["head_dropout"] = args.head_dropout
    model = build_model(CSKDForAestheticScoring, args, head, saved_fields=head)
    return model, CSKDImageProcessor.from_model_config(model.config)


@dataclass
class RunCard:
    """What the model card of a run's output says: its title, a summary, the hyper-parameters (`args`, the run's
    argument dataclass), and the labeled dataset and split that validated it, if any."""

    title: str
    summary: str
    args: object
    dataset: str | None = None
    validation_split: str = "validation"
    sources: list[str] = field(default_factory=list)  # every data source: a model trained on SynthAVA says so

    def model_card(self, config, metrics: dict | None):
        hyperparameters = {
            name: value
            for name, value in asdict(self.args).items()
            if name not in ("output_dir", "resume_from_checkpoint")
        }
        return model_card(
            config,
            self.title,
            self.summary,
            hyperparameters,
            metrics,
            dataset_name=self.dataset,
            split=self.validation_split,
            synthetic=any("synthava" in str(source).lower() for source in self.sources),
        )


def export_model(
    accelerator: Accelerator,
    model: torch.nn.Module,
    image_processor: CSKDImageProcessor,
    out_dir: str | Path,
    card: RunCard,
    metrics: dict | None = None,
) -> None:
    """`save_pretrained` the unwrapped model with its image processor and the run's model card, from the main process.

    The card's results are the validation metrics of the run (`metrics`); `cskd evaluate` adds test results.
    """
    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(model)
    unwrapped.save_pretrained(out_dir, is_main_process=accelerator.is_main_process, save_function=accelerator.save)
    if accelerator.is_main_process:
        image_processor.save_pretrained(out_dir)
        save_card(card.model_card(unwrapped.config, metrics), out_dir)
    accelerator.wait_for_everyone()


__all__ = ["RunCard", "build_model", "export_model", "scorer_from"]
