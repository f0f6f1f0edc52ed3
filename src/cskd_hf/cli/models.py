"""`cskd models`: the model ids cskd-hf knows, as a table."""

import argparse

from ..zoo import models_table


def models_command_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "models",
        help="list the models cskd-hf knows (converted predictors, the CSKD recipe's models)",
        description="The known model ids with architecture, input size, bins, source, licence and how to get them.",
    )
    parser.add_argument("--kind", choices=("converted", "recipe"), help="only this kind")
    parser.set_defaults(func=models_command)
    return parser


def models_command(args: argparse.Namespace) -> int:
    print(models_table(args.kind))
    return 0


__all__ = ["models_command", "models_command_parser"]
