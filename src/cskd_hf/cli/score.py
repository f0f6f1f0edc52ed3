"""`cskd score`: the aesthetic score of image files from a trained model, written as CSV or JSON Lines."""

import argparse
import sys

from ..data.images import find_images
from ..inference.scoring import BACKENDS, fast_scorer, load_onnx_scorer, load_scorer, score_files
from ..models.cskd.configuration_cskd import bin_labels as bin_labels_of
from .results import OUTPUT_FORMATS, count_results, open_output, output_format, write_results


def score_command_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "score",
        help="score image files with a trained model",
        description=(
            "Predict the aesthetic score of image files: the mean and standard deviation of the predicted vote "
            "distribution, on the model's scale (1-10 for AVA models), and the probability of each score bin. "
            "A file that cannot be read gets a row with the error and the run goes on; the exit code is non-zero "
            "only if no file could be scored."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="image files, folders (searched recursively for image files) or glob patterns (quote them)",
    )
    parser.add_argument("--model", required=True, help="a saved model folder or a Hub model id")
    parser.add_argument("--output", "-o", help="write results to this file (.csv or .jsonl); default: stdout as CSV")
    parser.add_argument("--format", choices=OUTPUT_FORMATS, help="output format; default: from --output's extension")
    parser.add_argument(
        "--batch-size", type=int, help="images per forward pass; default: 16 (torch, CPU), 32 (onnxruntime), 64 (GPU)"
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, mps, or auto (torch backend)")
    parser.add_argument(
        "--num-workers", type=int, help="DataLoader processes decoding images (0: none); default: 1 per core, up to 8"
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="auto: on the CPU with ONNX Runtime installed, the model's ONNX graph, exported on first use and cached "
        "($CSKD_ONNX_CACHE, default ~/.cache/huggingface/cskd_hf/onnx), else PyTorch; torch: the PyTorch model; "
        "onnxruntime: the graph that `cskd export` wrote into the model folder",
    )
    parser.add_argument("--quantized", action="store_true", help="onnxruntime: use the int8 graph (export --quantize)")
    parser.add_argument(
        "--no-draft",
        action="store_true",
        help="decode every JPEG at full size (by default large ones decode at 1/2-1/8 size, still above the input)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=score_command)
    return parser


def score_command(args: argparse.Namespace) -> int:
    """Score the images, writing each row as its batch is done; exit code 1 only if no file could be scored."""
    paths = find_images(args.paths)
    fmt = output_format(args.output, args.format)
    if args.backend == "onnxruntime":
        scorer, image_processor, config = load_onnx_scorer(args.model, quantized=args.quantized)
    else:
        model, image_processor = load_scorer(args.model, device=args.device)
        scorer, config = fast_scorer(model, args.backend), model.config
    bin_labels = list(bin_labels_of(config.bin_scores).values())  # not `id2label`: a scalar model has one label
    with open_output(args.output) as stream:
        results = score_files(
            scorer,
            image_processor,
            paths,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            progress=not args.no_progress,
            draft=not args.no_draft,
        )
        scored, failed = count_results(write_results(results, stream, fmt, bin_labels))
    destination = f" to {args.output}" if args.output else ""
    print(f"scored {scored} of {scored + failed} images{destination}; {failed} could not be read", file=sys.stderr)
    return 0 if scored > 0 else 1


__all__ = ["score_command", "score_command_parser"]
