"""The prediction loop of a scoring model over a labeled loader: validation during training and `cskd evaluate`."""

import numpy as np
import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader
from tqdm.auto import tqdm


@torch.no_grad()
def predict_mean_scores(
    model, loader: DataLoader, accelerator: Accelerator | None = None, tta: bool = False, progress: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Predicted and true mean scores over a labeled loader; batches with no readable image are passed over.

    With `accelerator` (a loader it prepared) each process predicts its part and the results are gathered, as
    validation during training does; without, one process predicts everything (`cskd evaluate`). With `tta` the
    prediction is the mean over the view and its horizontal flip.
    """
    was_training = model.training
    model.eval()
    main_process = accelerator is None or accelerator.is_local_main_process
    predicted, target = [], []
    for batch in tqdm(loader, desc="predicting", disable=not (progress and main_process), leave=False):
        if batch["pixel_values"] is None:
            continue
        pixel_values = batch["pixel_values"].to(next(model.parameters()).device)
        scores = model(pixel_values=pixel_values).mean_score.float()
        if tta:
            scores = (scores + model(pixel_values=pixel_values.flip(-1)).mean_score.float()) / 2
        truth = batch["mean_scores"]
        if accelerator is not None:
            scores, truth = accelerator.gather_for_metrics((scores, truth))
        predicted.append(scores.cpu())
        target.append(truth.cpu())
    model.train(was_training)
    return torch.cat(predicted).numpy(), torch.cat(target).numpy()


__all__ = ["predict_mean_scores"]
