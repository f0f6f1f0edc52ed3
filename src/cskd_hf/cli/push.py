"""`cskd push`: a model folder uploaded to the Hugging Face Hub in one commit."""

import argparse


def push_command_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "push",
        help="upload a model folder to the Hugging Face Hub",
        description=(
            "Upload a trained model to the Hub in one commit: weights, config, image processor, the modeling code "
            "that trust_remote_code needs, the model card (README.md), plots and metrics. Needs a Hub token "
            "(`hf auth login` or HF_TOKEN)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="the model folder to upload")
    parser.add_argument("--repo-id", required=True, help="ORG/NAME on the Hub")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--revision", help="branch to upload to (created if missing); default: main")
    parser.set_defaults(func=push_command)
    return parser


def push_command(args: argparse.Namespace) -> int:
    from ..hub import push_to_hub

    url = push_to_hub(args.model, args.repo_id, private=args.private, revision=args.revision)
    print(f"pushed {args.model} to {args.repo_id}: {url}")
    return 0


__all__ = ["push_command", "push_command_parser"]
