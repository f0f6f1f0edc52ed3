"""`cskd export`: a scoring model's ONNX graph, for `cskd score --backend onnxruntime`."""

import argparse

from ..inference.export import export_onnx


def export_command_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "export",
        help="export a scoring model to ONNX for `cskd score --backend onnxruntime`",
        description=(
            "Write the model's graph, from normalised pixel_values to the bin probabilities, mean and std score, to "
            "MODEL/onnx/model.onnx (and MODEL/onnx/model_quantized.onnx with --quantize). Decoding, resizing and "
            "normalisation stay in Python: the folder's image processor, as for the PyTorch model."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="a saved scoring model folder")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset version")
    parser.add_argument("--batch-size", type=int, help="a graph for exactly this batch size instead of any")
    parser.add_argument(
        "--quantize", action="store_true", help="also write a copy with int8 matrix products (dynamic quantisation)"
    )
    parser.set_defaults(func=export_command)
    return parser


def export_command(args: argparse.Namespace) -> int:
    written = export_onnx(
        args.model,
        opset=args.opset,
        dynamic_batch=args.batch_size is None,
        batch_size=args.batch_size or 1,
        quantize=args.quantize,
    )
    print("wrote " + ", ".join(map(str, written)))
    return 0


__all__ = ["export_command", "export_command_parser"]
