"""`cskd init`: a new, untrained scoring model folder."""

import argparse


def init_command_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "init",
        help="create a new, untrained scoring model folder",
        description=(
            "Write a new CSKDForAestheticScoring model and its image processor to a folder. The head is random: "
            "the model needs training before its scores mean anything. Backbone weights come from timm's ImageNet "
            "checkpoint with --backbone-pretrained (downloads) or from a local file with --backbone-checkpoint."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", required=True, help="folder to write the model into")
    parser.add_argument("--architecture", default="mobilenetv2_100", help="timm model name")
    parser.add_argument("--image-size", type=int, default=224, help="model input size in pixels")
    parser.add_argument("--bin-scores", type=float, nargs="+", help="score of each bin (default: 1 2 ... 10, as AVA)")
    parser.add_argument("--head-hidden-sizes", type=int, nargs="*", default=[], help="hidden layers of the head")
    pretrained = parser.add_mutually_exclusive_group()
    pretrained.add_argument("--backbone-pretrained", action="store_true", help="load timm's ImageNet weights")
    pretrained.add_argument("--backbone-checkpoint", help="load backbone weights from this local timm checkpoint")
    parser.set_defaults(func=init_command)
    return parser


def init_command(args: argparse.Namespace) -> int:
    from ..models.cskd import CSKDConfig, CSKDForAestheticScoring, CSKDImageProcessor

    bin_scores = args.bin_scores or list(range(1, 11))
    config = CSKDConfig(
        architecture=args.architecture,
        image_size=args.image_size,
        num_bins=len(bin_scores),
        bin_scores=bin_scores,
        head_hidden_sizes=args.head_hidden_sizes,
        backbone_pretrained=args.backbone_pretrained,
        backbone_checkpoint_path=args.backbone_checkpoint,
    )
    model = CSKDForAestheticScoring.from_config(config)
    model.save_pretrained(args.out)
    CSKDImageProcessor.from_model_config(config).save_pretrained(args.out)
    print(f"wrote an UNTRAINED {args.architecture} scoring model to {args.out} (random head: train it before use)")
    return 0


__all__ = ["init_command", "init_command_parser"]
