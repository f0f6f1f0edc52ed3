"""The model a phase II run starts from, and how a finished run is saved: `save_pretrained` with its image processor
and a model card."""

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator

from ..hub import model_card, save_card
from ..models.cskd import CSKDConfig, CSKDForAestheticScoring, CSKDImageProcessor
from .arguments import ModelArguments


def build_scorer(
    model_name_or_path: str | None,
    bin_scores: list[float],
    architecture: str,
    image_size: int,
    head_hidden_sizes: list[int],
    head_dropout: float,
    backbone_pretrained: bool = False,
    backbone_checkpoint_path: str | None = None,
    clip_backbone: str | None = None,
    model_args: dict | None = None,
) -> CSKDForAestheticScoring:
    """The model phase II starts from: a saved CFA (alignment) or scoring model, a CLIP image tower
    (`clip_backbone`, at CLIP's input size), or a new one from `architecture`.

    From an alignment checkpoint the aligned backbone is kept and the head is new, sized for the dataset's bins.
    """
    head = {"num_bins": len(bin_scores), "bin_scores": bin_scores, "head_hidden_sizes": head_hidden_sizes}
    head["head_dropout"] = head_dropout
    if model_name_or_path:
        return CSKDForAestheticScoring.from_pretrained(model_name_or_path, ignore_mismatched_sizes=True, **head)
    if clip_backbone:
        return CSKDForAestheticScoring.from_config(CSKDConfig.for_clip(clip_backbone, **head))
    config = CSKDConfig(
        architecture=architecture,
        image_size=image_size,
        backbone_pretrained=backbone_pretrained,
        backbone_checkpoint_path=backbone_checkpoint_path,
        model_args=model_args,
        **head,
    )
    return CSKDForAestheticScoring.from_config(config)


def scorer_from(args: ModelArguments, bin_scores: list[float]):
    model = build_scorer(
        args.model,
        bin_scores,
        args.architecture,
        args.image_size,
        args.head_hidden_sizes,
        args.head_dropout,
        args.backbone_pretrained,
        args.backbone_checkpoint_path,
        args.clip_backbone,
        args.model_args,
    )
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


__all__ = ["RunCard", "build_scorer", "export_model", "scorer_from"]
