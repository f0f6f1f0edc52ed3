"""`cskd probe`: the CLIP linear probe baseline, fitted and saved as a scoring model."""

import argparse


def probe_command_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "probe",
        help="fit the CLIP linear probe (ridge regression on frozen CLIP embeddings), saved as a model (baseline)",
        description=(
            "The linear probe of Hentschel et al. (2022): CLIP image embeddings of the train and validation splits "
            "(cached with --cache), closed-form ridge regression on the mean score (or the log vote distribution), "
            "the penalty chosen on the validation split. Saved as a scoring model for cskd score / evaluate."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--clip", required=True, help="a CLIP checkpoint (Hub id or folder)")
    parser.add_argument("--dataset", required=True, help="a labeled dataset with train and validation splits")
    parser.add_argument("--out", required=True, help="folder to save the probe model into")
    parser.add_argument("--target", choices=("mean", "distribution"), default="mean", help="what the ridge regresses")
    parser.add_argument("--cache", help="folder for the cached embeddings (reused by later runs)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader processes decoding images")
    parser.set_defaults(func=probe_command)
    return parser


def probe_command(args: argparse.Namespace) -> int:
    from ..baselines.linear_probe import fit_linear_probe
    from ..data.prepare import load_labeled

    report = fit_linear_probe(
        args.clip,
        load_labeled(args.dataset),
        args.out,
        target=args.target,
        cache_dir=args.cache,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
    )
    print(
        f"wrote the linear probe to {args.out}: penalty {report['penalty']:.3g}, "
        f"validation MSE {report['validation_mse']:.3f}"
    )
    return 0


__all__ = ["probe_command", "probe_command_parser"]
