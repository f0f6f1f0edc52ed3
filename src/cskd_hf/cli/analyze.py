"""`cskd analyze`: diagnostics of trained backbones (`attention`: the CSKD paper's Fig. 3)."""

import argparse


def analyze_command_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("analyze", help="diagnostics of trained backbones", description="Diagnostics.")
    analyses = parser.add_subparsers(dest="analyze_command", metavar="ANALYSIS", required=True)

    attention = analyses.add_parser(
        "attention",
        help="mean attention distance and entropy per layer of ViT backbones (the CSKD paper's Fig. 3), with a plot",
        description=(
            "For each model (any CSKD model folder with a timm ViT or CLIP backbone), the mean attention distance "
            "in pixels and the attention entropy of every layer on the same images; writes attention.json, "
            "attention.md and attention.png into --out. Compare, e.g., a backbone before and after CFA, or CLIP "
            "before and after direct fine-tuning."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    attention.add_argument("--model", action="append", required=True, help="a model folder or Hub id (repeatable)")
    attention.add_argument("--name", action="append", help="a name per --model for the table and plot")
    source = attention.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", nargs="+", help="image files, folders or glob patterns")
    source.add_argument("--dataset", help="a labeled dataset (folder, Hub id, ...) to take images from")
    attention.add_argument("--split", default="test", help="--dataset's split")
    attention.add_argument("--num-images", type=int, default=32, help="how many images to average over")
    attention.add_argument("--out", default="outputs/attention", help="folder for the table, JSON and plot")
    attention.set_defaults(func=analyze_attention_command)
    return parser


def analyze_attention_command(args: argparse.Namespace) -> int:
    from ..analysis import analyze_models
    from ..data.batching import iter_labeled_images
    from ..data.images import find_images, open_image
    from ..data.prepare import load_labeled

    if args.name and len(args.name) != len(args.model):
        raise ValueError(f"{len(args.name)} --name for {len(args.model)} --model")
    if args.images:
        images = [open_image(path) for path in find_images(args.images)[: args.num_images]]
    else:
        split = load_labeled(args.dataset)[args.split]
        images = [image for image, _ in iter_labeled_images(split.select(range(min(args.num_images, len(split)))))]
    results = analyze_models(args.model, images, args.out, names=args.name)
    for name, result in results.items():
        distances = ", ".join(f"{value:.1f}" for value in result["mean_attention_distance"])
        print(f"{name}: mean attention distance per layer (px) {distances}")
    print(f"wrote attention.md, attention.json and attention.png to {args.out}")
    return 0


__all__ = ["analyze_attention_command", "analyze_command_parser"]
