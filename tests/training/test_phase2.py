"""`cskd_hf.training.phase2`: a new mode is one objective that the unchanged loop (`phase2.fit`) runs, trains,
logs and summarises per epoch as it does the trainers' own."""

from dataclasses import dataclass

from accelerate.utils import set_seed

from cskd_hf import losses
from cskd_hf.data.labeled import bin_scores_of
from cskd_hf.data.prepare import load_labeled
from cskd_hf.models.cskd import AestheticScoringOutput
from cskd_hf.training import phase2, supervised
from cskd_hf.training.common import make_accelerator
from cskd_hf.training.models import RunCard, scorer_from
from cskd_hf.training.objectives import FineTuning, StepBatch
from tests.training.helpers import QUICK


@dataclass
class ConfidentFineTuning(FineTuning):
    """A sixth mode, for this test alone: fine-tuning plus a penalty on the entropy of the predicted distribution."""

    entropy_weight: float = 0.1

    def loss_terms(self, batch: StepBatch, student: AestheticScoringOutput) -> losses.LossTerms:
        terms = super().loss_terms(batch, student)
        probabilities = student.probabilities
        entropy = -(probabilities * probabilities.clamp_min(1e-12).log()).sum(-1).mean()
        terms["entropy"] = (self.entropy_weight, entropy)
        return terms


def test_a_new_mode_is_one_objective_run_by_the_unchanged_loop(toy_world, tmp_path):
    """No loop is touched: the toy objective goes to `phase2.fit` as the trainers' own do, and its term is trained,
    logged and summarised per epoch like theirs."""
    args = supervised.parse_arguments(
        supervised.FinetuneArguments,
        ["--dataset", str(toy_world["labeled"]), "--output_dir", str(tmp_path), "--num_epochs", "2"]
        + ["--batch_size", "8", "--num_workers", "0", "--head_dropout", "0.1", *QUICK],
    )
    accelerator = make_accelerator(args)
    set_seed(args.seed)
    data = load_labeled(str(toy_world["labeled"]))
    model, image_processor = scorer_from(args, bin_scores_of(data["train"]))
    card = RunCard(title="toy", summary="a sixth mode", args=args)
    run = phase2.ScorerRun(model, image_processor, card, data["train"], data["validation"])
    result = phase2.fit(accelerator, args, run, ConfidentFineTuning(emd_r=model.config.emd_r, entropy_weight=0.5))
    epochs = result["history"]
    assert [sorted(key for key in epoch if key.startswith("train/")) for epoch in epochs] == [
        ["train/epoch_loss", "train/epoch_loss_entropy", "train/epoch_loss_supervised"]
    ] * 2
    for epoch in epochs:  # the epoch's loss is the weighted sum of its terms' means
        weighted = epoch["train/epoch_loss_supervised"] + 0.5 * epoch["train/epoch_loss_entropy"]
        assert abs(epoch["train/epoch_loss"] - weighted) < 1e-5
    assert epochs[-1]["train/epoch_loss_entropy"] < epochs[0]["train/epoch_loss_entropy"]  # the penalty is trained
    assert "srcc" in result and (tmp_path / "model.safetensors").exists() and (tmp_path / "best").is_dir()
