"""`cskd evaluate`: metrics, a comparison table and plots of models on a labeled dataset."""

import argparse


def evaluate_command_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate one or more models on a labeled dataset, with plots",
        description=(
            "Score a labeled dataset split with each model and write, into --out: metrics.json per model (MSE, "
            "SRCC, PLCC, accuracy, IER per interval, N, model revision, dataset split), comparison.md, and the "
            "plots ier.png, scatter.png and histogram.png. The table is printed too."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model", action="append", required=True, help="a model folder or Hub id (repeatable)")
    parser.add_argument(
        "--dataset", required=True, help="a prepared dataset folder or Hub id, or ava:ROOT, aadb:ROOT, para:ROOT"
    )
    parser.add_argument("--split", default="test", help="split to evaluate")
    parser.add_argument("--out", default="outputs/evaluation", help="folder for metrics, table and plots")
    parser.add_argument("--tta", action="store_true", help="also evaluate with test-time augmentation (flip)")
    parser.add_argument(
        "--ier-threshold", type=float, help="IER's error t (default: 0.5 on AVA's 1-10, scaled to the dataset's range)"
    )
    parser.add_argument(
        "--interval-width", type=float, help="IER's interval width (default: 1 on AVA's 1-10, scaled likewise)"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader processes decoding images")
    parser.add_argument("--device", default="auto", help="cpu, cuda, mps or auto")
    parser.set_defaults(func=evaluate_command)
    return parser


def evaluate_command(args: argparse.Namespace) -> int:
    from ..evaluation import evaluate_models

    evaluate_models(
        args.model,
        args.dataset,
        split=args.split,
        out_dir=args.out,
        tta=args.tta,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        device=args.device,
        ier_threshold=args.ier_threshold,
        interval_width=args.interval_width,
    )
    print(f"wrote metrics, comparison.md and plots to {args.out}")
    return 0


__all__ = ["evaluate_command", "evaluate_command_parser"]
