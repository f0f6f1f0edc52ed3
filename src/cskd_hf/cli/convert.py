"""`cskd convert`: a published aesthetic predictor's checkpoint as a CSKD model folder."""

import argparse


def convert_command_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "convert",
        help="convert a published aesthetic predictor's checkpoint into a CSKD model folder",
        description=(
            "Turn the checkpoint file of a published predictor into an ordinary CSKD model folder (weights, image "
            "processor reproducing the original's preprocessing, card with the source's licence) that cskd score, "
            "the pipeline, ONNX export, the Space and SKD (as teacher) take. pyiqa-nima: pyiqa's NIMA "
            "(NIMA_InceptionV2_ava-*.pth); pyiqa-nima-vgg16: its VGG16 variant (NIMA_VGG16_ava-*.pth). "
            "laion-aesthetic: the LAION aesthetic predictor v2's MLP (sac+logos+ava1-l14-linearMSE.pth) over CLIP "
            "ViT-L/14 (--clip). `cskd models` lists them."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "source", choices=("pyiqa-nima", "pyiqa-nima-vgg16", "laion-aesthetic"), help="what the checkpoint is"
    )
    parser.add_argument("checkpoint", help="the downloaded checkpoint file (.pth or .safetensors)")
    parser.add_argument("--out", required=True, help="folder to write the model into")
    parser.add_argument(
        "--clip", default="openai/clip-vit-large-patch14", help="laion-aesthetic: the CLIP, a Hub id or local folder"
    )
    parser.add_argument(
        "--spread", type=float, default=1.4, help="laion-aesthetic: σ of the distribution around the predicted score"
    )
    parser.add_argument(
        "--activation",
        choices=("linear", "relu"),
        help="laion-aesthetic: the MLP's kind (default: from the file name, *-linearMSE.pth or *-reluMSE.pth)",
    )
    parser.set_defaults(func=convert_command)
    return parser


def convert_command(args: argparse.Namespace) -> int:
    from ..convert import CONVERTERS

    options = {"clip": args.clip, "spread": args.spread, "activation": args.activation}
    out = CONVERTERS[args.source](args.checkpoint, args.out, **(options if args.source == "laion-aesthetic" else {}))
    print(f"wrote {out}: cskd score PHOTOS --model {out}")
    return 0


__all__ = ["convert_command", "convert_command_parser"]
