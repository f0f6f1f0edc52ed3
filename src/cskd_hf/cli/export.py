"""`cskd export`: a scoring model's ONNX graph and scoring spec, and with `--web` a static page that scores photos in
the browser."""

import argparse


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
        from ..runtime.graph_cache import find_graph
        from ..runtime.web import write_web_page

        graph = find_graph(args.model)
        if graph is None or args.batch_size or args.quantize or args.exporter != "auto":
            export_graph(args)
            graph = find_graph(args.model)
        page = write_web_page(graph, args.web, title=args.title, model=str(args.model))
        print(f"wrote {page.parent}: serve it with `python -m http.server -d {page.parent}` and open the page")
        return 0
    print("wrote " + ", ".join(map(str, export_graph(args))))
    return 0


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
