"""`cskd export`: a scoring model's ONNX graph and scoring spec, and with `--web` a static page that scores photos in
the browser."""

import argparse
from pathlib import Path


def export_command_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "export",
        help="export a scoring model to ONNX (and a static web page that scores in the browser)",
        description=(
            "Write the model's graph, from normalised pixel_values to the bin probabilities, mean and std score, to "
            "MODEL/onnx/model.onnx (and MODEL/onnx/model_quantized.onnx with --quantize), with the scoring spec "
            "MODEL/onnx/spec.json: how an image becomes pixel_values (the image processor's resize, crop and "
            "normalisation) and what the bins score. `cskd score` then runs the graph without torch. With --web OUT, "
            "also write a static site into OUT that scores photos in the browser with onnxruntime-web: serve it with "
            "any static file server (python -m http.server -d OUT) or upload it as a static Hugging Face Space."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="a saved scoring model folder")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset version")
    parser.add_argument("--batch-size", type=int, help="a graph for exactly this batch size instead of any")
    parser.add_argument(
        "--quantize", action="store_true", help="also write a copy with int8 matrix products (dynamic quantisation)"
    )
    parser.add_argument(
        "--exporter",
        choices=("auto", "torchscript", "dynamo"),
        default="auto",
        help="torch's exporter: TorchScript's (3x faster to export here; deprecated by torch), torch.export's "
        "(dynamo), or auto: TorchScript's while torch has it, else torch.export's",
    )
    parser.add_argument(
        "--web",
        metavar="OUT",
        help="write a static site that scores photos in the browser into OUT (reusing the folder's graph when it is "
        "up to date: then no torch is needed)",
    )
    parser.add_argument("--title", default="Aesthetic scores", help="--web: the page's and the Space's title")
    parser.set_defaults(func=export_command)
    return parser


def export_command(args: argparse.Namespace) -> int:
    if args.web:
        from ..runtime.web import check_web_runtime, write_web_page

        if args.batch_size:
            raise ValueError("--web: the page scores any number of photos at once; leave out --batch-size")
        check_web_runtime()  # before a possibly long export
        page = write_web_page(web_graph(args), args.web, title=args.title, model=str(args.model))
        print(f"wrote {page.parent}: serve it with `python -m http.server -d {page.parent}` and open the page")
        return 0
    print("wrote " + ", ".join(map(str, export_graph(args))))
    return 0


def web_graph(args: argparse.Namespace):
    """The graph for the page; with export options given for a local folder, exported there with them first."""
    from ..runtime.scoring import resolve_model_folder

    if (args.quantize or args.exporter != "auto" or args.opset != 18) and Path(args.model).is_dir():
        export_graph(args)
    return graph_for_any_batch(resolve_model_folder(args.model))


def graph_for_any_batch(model_dir: Path):
    """A model folder's graph that takes any batch size, as a page sending its photos' count needs: the folder's or
    the cached one when it is up to date and dynamic (no torch needed then), else one exported into the cache
    (which leaves a fixed-batch folder graph as it is). `cskd export --web` and the Space's on-device page."""
    from ..runtime.graph_cache import find_graph
    from ..runtime.scoring import OnnxSession

    graph = find_graph(model_dir)
    if graph is not None and OnnxSession(graph.path).fixed_batch_size is None:
        return graph
    from ..inference.export import export_to_graph_cache

    return export_to_graph_cache(model_dir)


def export_graph(args: argparse.Namespace) -> list:
    from ..inference.export import export_onnx

    return export_onnx(
        args.model,
        opset=args.opset,
        dynamic_batch=args.batch_size is None,
        batch_size=args.batch_size or 1,
        quantize=args.quantize,
        exporter=args.exporter,
    )


__all__ = ["export_command", "export_command_parser"]
