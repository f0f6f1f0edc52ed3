"""`cskd zeroshot`: the CLIP zero-shot baseline on image files, or its metrics on a labeled dataset."""

import argparse
import json
import os
from collections.abc import Sequence

from .results import count_results, open_output, write_zero_shot_results


def zeroshot_command_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "zeroshot",
        help="score images, or evaluate on a dataset, with CLIP prompts and no training (baseline)",
        description=(
            "The zero-shot baseline of Hentschel et al. (2022): for each antonym prompt pair (good/bad photo, ...) "
            "the softmax of CLIP's image-text logits gives the positive prompt's probability; the score is their mean "
            "over the pairs, in [0, 1]. With --dataset, a linear map of positive slope fitted on its "
            "--calibration-split puts scores on the dataset's scale (the ranking is untouched) and, without PATHs, "
            "the metrics on --split are printed and written."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="image files, folders or glob patterns")
    parser.add_argument("--clip", required=True, help="a CLIP checkpoint (Hub id or folder with its tokenizer)")
    parser.add_argument("--prompts", help="prompt pairs: 'positive | negative' lines, or a JSON list of pairs")
    parser.add_argument("--dataset", help="a labeled dataset (folder, Hub id, ava:ROOT, ...) to calibrate or evaluate")
    parser.add_argument("--split", default="test", help="split to evaluate")
    parser.add_argument("--calibration-split", default="train", help="split the score map is fitted on")
    parser.add_argument("--output", "-o", help="CSV of scores (PATHs) or JSON of metrics (--dataset alone)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass")
    parser.set_defaults(func=zeroshot_command)
    return parser


def zeroshot_command(args: argparse.Namespace) -> int:
    """Score PATHs (calibrated on --dataset if given), or evaluate on --dataset; exit code 1 if nothing scored."""
    from ..baselines.zero_shot import DEFAULT_PROMPTS, PromptTooLongError, evaluate_zero_shot, load_prompts
    from ..data.prepare import load_labeled

    prompts = load_prompts(args.prompts) if args.prompts else DEFAULT_PROMPTS
    dataset_dict = load_labeled(args.dataset) if args.dataset else None
    if not args.paths and dataset_dict is None:
        raise ValueError("give image PATHs to score, or --dataset to evaluate on")
    try:
        if not args.paths:
            metrics = evaluate_zero_shot(args.clip, dataset_dict, args.split, args.calibration_split, prompts)
            print(
                f"zero-shot on {args.dataset} ({args.split}): SRCC {metrics['srcc']:.3f}, PLCC {metrics['plcc']:.3f}"
            )
            if args.output:
                with open(args.output, "w") as file:
                    json.dump(metrics, file, indent=1)
            return 0
        calibration = dataset_dict[args.calibration_split] if dataset_dict else None
        scored, _ = zero_shot_to_file(args.clip, args.paths, args.output, prompts, calibration, args.batch_size)
    except PromptTooLongError as error:  # found by the CLIP's tokenizer; the prompt file is named here
        raise ValueError(f"{args.prompts or 'the default prompts'}: {error}") from error
    return 0 if scored else 1


def zero_shot_to_file(
    clip_name_or_path: str | os.PathLike,
    inputs: Sequence[str],
    output: str | None,
    prompts: Sequence[tuple[str, str]],
    calibration,
    batch_size: int,
) -> tuple[int, int]:
    """Zero-shot scores of the images in `inputs` as CSV (`path, zero_shot[, score], error`) to `output` or stdout;
    with a labeled `calibration` split, `score` is on its scale. Returns (number scored, number unreadable)."""
    from ..baselines.zero_shot import ZeroShotScorer, fit_score_map, score_paths
    from ..data.images import find_images

    scorer = ZeroShotScorer(clip_name_or_path, prompts)
    score_map = fit_score_map(scorer, calibration) if calibration is not None else None
    with open_output(output) as stream:
        results = score_paths(scorer, find_images(inputs), batch_size)
        return count_results(write_zero_shot_results(results, stream, score_map))


__all__ = ["zeroshot_command", "zeroshot_command_parser"]
