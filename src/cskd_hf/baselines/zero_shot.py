"""Zero-shot aesthetic scores from CLIP prompts, no training (Hentschel et al., 2022, "CLIP knows image aesthetics").

For each antonym pair ("a good photo." / "a bad photo."), CLIP's image-text logits (cosine similarity times CLIP's
learned logit scale) of the two prompts go through a softmax: the probability of the positive prompt. The score is
the mean of these probabilities over the pairs, in [0, 1]: the combination used here, with equal weights, so that no
labels are involved. `ScoreMap.fit` then maps it onto a dataset's scale with a linear map of positive slope, fitted
on a labeled split by least squares: the ranking (SRCC) is untouched, PLCC too; only MSE and accuracy depend on it.

    cskd zeroshot photos/ --clip openai/clip-vit-large-patch14
    cskd zeroshot --clip openai/clip-vit-large-patch14 --dataset ./ava-parquet   # SRCC/PLCC on the test split
"""

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm
from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

from ..data.batching import iter_labeled_images
from ..data.images import ImageReadError, open_image
from ..data.labeled import bin_scores_of
from ..inference.scoring import ScoreResult
from ..metrics import aesthetic_metrics, metric_scale

logger = logging.getLogger(__name__)

# Antonym pairs in the spirit of Hentschel et al.: overall judgement, quality, beauty and a few photographic terms.
DEFAULT_PROMPTS = [
    ("a good photo.", "a bad photo."),
    ("a high quality photo.", "a low quality photo."),
    ("a beautiful photo.", "an ugly photo."),
    ("an aesthetically pleasing photo.", "an aesthetically displeasing photo."),
    ("a professional photo.", "an amateur photo."),
    ("a sharp photo.", "a blurry photo."),
    ("a well exposed photo.", "a badly exposed photo."),
    ("a photo with harmonious colors.", "a photo with clashing colors."),
]


class PromptTooLongError(ValueError):
    """A prompt has more tokens than the CLIP text tower's positions."""


def load_prompts(path: str | os.PathLike) -> list[tuple[str, str]]:
    """Prompt pairs from a file: a JSON list of `[positive, negative]`, or text lines `positive | negative`
    (blank lines and `#` comments ignored). A malformed file raises a `ValueError` naming the file and the line or
    entry."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text (byte {error.start}): prompt files are UTF-8") from None
    if path.suffix == ".json":
        try:
            entries = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{error.lineno}: not JSON ({error.msg})") from None
        if not isinstance(entries, list):
            raise ValueError(
                f"{path}: expected a JSON list of [positive, negative] pairs, got {type(entries).__name__}"
            )
        pairs = []
        for number, pair in enumerate(entries):
            if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) and p.strip() for p in pair)):
                raise ValueError(f"{path}: entry {number} should be a pair of non-empty strings, got {pair!r}")
            pairs.append((pair[0].strip(), pair[1].strip()))
    else:
        pairs = []
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = [part.strip() for part in line.split("|")]
            if len(parts) != 2 or not all(parts):
                raise ValueError(f"{path}:{number}: expected 'positive prompt | negative prompt', got {line!r}")
            pairs.append((parts[0], parts[1]))
    if not pairs:
        raise ValueError(f"{path}: needs at least one pair of non-empty prompts")
    return pairs


def write_prompts(pairs: Sequence[tuple[str, str]], path: str | os.PathLike) -> Path:
    path = Path(path)
    path.write_text("".join(f"{positive} | {negative}\n" for positive, negative in pairs), encoding="utf-8")
    return path


@dataclass
class ScoreMap:
    """`score = slope * zero_shot + intercept`, with `slope > 0` so that rankings are kept."""

    slope: float = 1.0
    intercept: float = 0.0

    @classmethod
    def fit(cls, zero_shot: np.ndarray, mean_scores: np.ndarray) -> "ScoreMap":
        """Least squares on a labeled split; if the prompts rank that split backwards (slope ≤ 0), match the mean and
        the spread instead, which keeps the (backward) ranking visible rather than flattening it."""
        zero_shot, mean_scores = np.asarray(zero_shot, float), np.asarray(mean_scores, float)
        spread = zero_shot.std()
        if spread == 0:
            return cls(slope=1.0, intercept=float(mean_scores.mean() - zero_shot.mean()))
        slope = float(np.cov(zero_shot, mean_scores, bias=True)[0, 1] / spread**2)
        if slope <= 0:
            logger.warning("the prompts rank the calibration split backwards: mapping by mean and spread only")
            slope = float(mean_scores.std() / spread)
        return cls(slope=slope, intercept=float(mean_scores.mean() - slope * zero_shot.mean()))

    def __call__(self, zero_shot: np.ndarray) -> np.ndarray:
        return self.slope * np.asarray(zero_shot) + self.intercept


class ZeroShotScorer:
    """A CLIP checkpoint (Hub id or folder with its tokenizer and image processor) and a set of prompt pairs."""

    def __init__(
        self,
        clip_name_or_path: str | os.PathLike,
        prompts: Sequence[tuple[str, str]] = DEFAULT_PROMPTS,
        device: str | torch.device = "cpu",
    ):
        self.model = CLIPModel.from_pretrained(clip_name_or_path).to(device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(clip_name_or_path)
        self.image_processor = AutoImageProcessor.from_pretrained(clip_name_or_path)
        self.prompts = [tuple(pair) for pair in prompts]
        unknown = getattr(self.tokenizer, "unk_token_id", None)
        with torch.inference_mode():
            texts = [prompt for pair in self.prompts for prompt in pair]
            tokens = self.tokenizer(texts, padding=True, return_tensors="pt").to(device)
            longest = self.model.config.text_config.max_position_embeddings
            too_long = [text for text, mask in zip(texts, tokens["attention_mask"]) if int(mask.sum()) > longest]
            if too_long:
                raise PromptTooLongError(
                    f"prompts longer than the {longest} tokens CLIP's text tower reads: {too_long}"
                )
            if unknown is not None and unknown != self.tokenizer.eos_token_id:
                unknown_words = (tokens["input_ids"] == unknown).any(dim=1)
                if unknown_words.any():
                    bad = [text for text, flag in zip(texts, unknown_words.tolist()) if flag]
                    logger.warning(f"words unknown to {clip_name_or_path}'s tokenizer in the prompts {bad}")
            self.text_embeds = _normalise(_features(self.model.get_text_features(**tokens)))

    @torch.inference_mode()
    def pair_probabilities(self, images: Sequence[Image.Image]) -> np.ndarray:
        """`(N, pairs)`: for each image and pair, the probability CLIP gives the positive prompt."""
        pixel_values = self.image_processor(images=list(images), return_tensors="pt")["pixel_values"]
        image_embeds = _normalise(_features(self.model.get_image_features(pixel_values=pixel_values.to(self.device))))
        logits = self.model.logit_scale.exp() * image_embeds @ self.text_embeds.T
        return logits.view(len(images), len(self.prompts), 2).softmax(dim=-1)[..., 0].float().cpu().numpy()

    def __call__(self, images: Sequence[Image.Image]) -> np.ndarray:
        """`(N,)` zero-shot scores in [0, 1]: the mean over pairs of the positive prompt's probability."""
        return self.pair_probabilities(images).mean(axis=1)

    @property
    def device(self) -> torch.device:
        return self.model.device

    def score_dataset(self, dataset, batch_size: int = 64, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Zero-shot scores and true mean scores over a labeled split (unreadable images skipped)."""

        scores, targets = [], []
        batch, batch_targets = [], []
        for image, mean_score in tqdm(
            iter_labeled_images(dataset), total=len(dataset), desc="zero-shot", disable=not progress
        ):
            batch.append(image)
            batch_targets.append(mean_score)
            if len(batch) == batch_size:
                scores.append(self(batch))
                targets += batch_targets
                batch, batch_targets = [], []
        if batch:
            scores.append(self(batch))
            targets += batch_targets
        return np.concatenate(scores), np.asarray(targets)


def score_paths(scorer: ZeroShotScorer, paths: Sequence[str | os.PathLike], batch_size: int = 32):
    """A `ScoreResult` per file, in order: `score` is the zero-shot score, or `error` says why the file is
    unreadable."""
    for start in range(0, len(paths), batch_size):
        images, results = [], []
        for path in paths[start : start + batch_size]:
            try:
                images.append(open_image(path))
                results.append(ScoreResult(path=str(path)))
            except ImageReadError as error:
                results.append(ScoreResult(path=str(path), error=str(error)))
        scores = iter(scorer(images) if images else [])
        for result in results:
            if result.error is None:
                result.score = float(next(scores))
            yield result


def fit_score_map(scorer: ZeroShotScorer, calibration, calibration_size: int = 2000, progress: bool = True):
    """A `ScoreMap` fitted on (at most `calibration_size` images of) a labeled split."""
    calibration = calibration.select(range(min(calibration_size, len(calibration))))
    return ScoreMap.fit(*scorer.score_dataset(calibration, progress=progress))


def evaluate_zero_shot(
    clip_name_or_path: str | os.PathLike,
    dataset_dict,
    split: str = "test",
    calibration_split: str = "train",
    prompts: Sequence[tuple[str, str]] = DEFAULT_PROMPTS,
    calibration_size: int = 2000,
    progress: bool = True,
) -> dict:
    """Metrics of the zero-shot scores on `split`, mapped onto the dataset's scale by a `ScoreMap` fitted on (at
    most `calibration_size` images of) `calibration_split`; SRCC and PLCC do not depend on the map."""
    scorer = ZeroShotScorer(clip_name_or_path, prompts)
    score_map = fit_score_map(scorer, dataset_dict[calibration_split], calibration_size, progress)
    zero_shot, targets = scorer.score_dataset(dataset_dict[split], progress=progress)
    metrics = aesthetic_metrics(score_map(zero_shot), targets, **metric_scale(bin_scores_of(dataset_dict[split])))
    return metrics | {"score_map": asdict(score_map), "prompts": [list(pair) for pair in scorer.prompts]}


def _features(output) -> torch.Tensor:
    # transformers 5 returns a model output here; earlier versions the tensor itself.
    return getattr(output, "pooler_output", output)


def _normalise(embeddings: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(embeddings.float(), dim=-1)


__all__ = [
    "DEFAULT_PROMPTS",
    "ScoreMap",
    "ZeroShotScorer",
    "evaluate_zero_shot",
    "fit_score_map",
    "PromptTooLongError",
    "load_prompts",
    "score_paths",
    "write_prompts",
]
