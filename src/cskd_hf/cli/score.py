"""`cskd score`: the aesthetic score of image files from a trained model, written as CSV or JSON Lines."""

import argparse
import logging
import shutil
import sys

from .results import OUTPUT_FORMATS, count_results, open_output, output_format, write_results

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnxruntime")


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
    parser.add_argument(
        "--device",
        default="auto",
        help="cpu, cuda, cuda:1, mps, or auto; a GPU named here runs the PyTorch model (with --backend auto), cpu "
        "keeps ONNX Runtime on the CPU",
    )
    parser.add_argument(
        "--num-workers",
        type=int,
        help="decoding workers (threads with a graph, DataLoader processes with torch; 0: none for torch); default: "
        "1 per core, up to 8",
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="auto: the model's ONNX graph, run without torch: the one `cskd export` wrote into the model folder, "
        "else the one cached for the folder's files ($CSKD_ONNX_CACHE, default ~/.cache/huggingface/cskd_hf/onnx), "
        "exported there on first use (with torch); PyTorch instead on a GPU or when exporting fails. torch: the "
        "PyTorch model; onnxruntime: the folder's or the cached graph, never torch",
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
    from ..data.images import find_images
    from ..runtime.scoring import resolve_model_folder

    paths = find_images(args.paths)
    fmt = output_format(args.output, args.format)
    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    portable = None if uses_torch(args) else portable_scorer(resolve_model_folder(args.model), args)
    if portable is None:
        bin_scores, results = torch_results(args.model, paths, args)  # loads the model; scores as rows are written
    else:
        bin_scores = portable.spec.bin_scores
    with open_output(args.output) as stream:  # an unwritable output fails before any image is read
        if portable is not None:
            results = portable.score_files(
                paths, batch_size=args.batch_size, num_threads=args.num_workers, draft=not args.no_draft,
                progress=not args.no_progress,
            )  # fmt: skip
        bin_labels = [f"{score:g}" for score in bin_scores]  # not `id2label`: a scalar model has one label
        scored, failed = count_results(write_results(results, stream, fmt, bin_labels))
    destination = f" to {args.output}" if args.output else ""
    print(f"scored {scored} of {scored + failed} images{destination}; {failed} could not be read", file=sys.stderr)
    return 0 if scored > 0 else 1


def uses_torch(args: argparse.Namespace) -> bool:
    """`--backend torch`, or `auto` with a GPU asked for by name: the PyTorch model runs, whatever graph exists."""
    return args.backend == "torch" or (args.backend == "auto" and args.device not in ("auto", "cpu"))


def portable_scorer(model_dir, args: argparse.Namespace):
    """The torch-free scorer of the folder's graph or the cached one, exported first when `auto` may; None for the
    PyTorch path."""
    from ..runtime.scoring import GraphNotFoundError, PortableScorer

    providers = ["CPUExecutionProvider"] if args.device == "cpu" else None
    try:
        return PortableScorer.from_pretrained(
            model_dir, quantized=args.quantized, providers=providers, trust_unverified=args.backend == "onnxruntime"
        )
    except GraphNotFoundError:
        if args.backend == "onnxruntime" or args.quantized:
            raise
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            f"{args.model} has no exported graph, and exporting one needs torch: `pip install cskd-hf[torch]`, then "
            "`cskd export --model ...` once (or score where torch is installed)"
        ) from error
    if args.device == "auto" and torch.cuda.is_available():
        return None
    from ..inference.export import export_to_graph_cache, load_scoring_model

    model = load_scoring_model(model_dir)  # a damaged folder is named here, not taken for an export failure
    try:
        graph = export_to_graph_cache(model_dir, model=model)
    except Exception as error:  # any export failure (an operator ONNX lacks, ...) leaves the PyTorch path
        logger.warning(f"scoring with PyTorch: exporting the model to ONNX failed ({type(error).__name__}: {error})")
        return None
    try:
        return PortableScorer(graph, providers=providers)
    except Exception as error:  # a graph ONNX Runtime cannot load: not kept, so that the next run does not fail too
        logger.warning(f"scoring with PyTorch: ONNX Runtime cannot run the exported graph ({type(error).__name__}: "
                       f"{error})")  # fmt: skip
        shutil.rmtree(graph.path.parent, ignore_errors=True)
        return None


def torch_results(model_name_or_path, paths, args: argparse.Namespace):
    """The bin scores and the results of the PyTorch model."""
    from ..inference.scoring import TorchScorer, load_scorer, score_files

    model, image_processor = load_scorer(model_name_or_path, device=args.device)
    results = score_files(
        TorchScorer(model), image_processor, paths, batch_size=args.batch_size, num_workers=args.num_workers,
        progress=not args.no_progress, draft=not args.no_draft,
    )  # fmt: skip
    return model.config.bin_scores, results


__all__ = ["score_command", "score_command_parser"]
