"""The `cskd` entry point: the top-level parser, with each command registered from its own module.

Building the parser imports only the command modules' parsers, which load no torch, timm or transformers (each
command imports what it needs when it runs), so `cskd --help` is quick.
"""

import argparse
import re
import sys
from collections.abc import Sequence

from .. import __version__
from .analyze import analyze_command_parser
from .convert import convert_command_parser
from .data import data_command_parser
from .evaluate import evaluate_command_parser
from .export import export_command_parser
from .init import init_command_parser
from .models import models_command_parser
from .probe import probe_command_parser
from .push import push_command_parser
from .quickstart import quickstart_command_parser
from .score import score_command_parser
from .zeroshot import zeroshot_command_parser

EPILOG = """examples:
  cskd score photos/ --model cskd/mv2-ava --output scores.csv
  cskd score 'shoot/**/*.jpg' extra.png --model ./my-model --output scores.jsonl --batch-size 64
  cskd zeroshot photos/ --clip openai/clip-vit-large-patch14
  cskd probe --clip openai/clip-vit-large-patch14 --dataset ./ava-parquet --out ./clip-probe --cache ./clip-cache
  cskd export --model ./my-model --quantize && cskd score photos/ --model ./my-model --backend onnxruntime
  cskd init --architecture mobilenetv2_100 --out ./untrained-mv2
  cskd convert laion-aesthetic sac+logos+ava1-l14-linearMSE.pth --out ./laion-aesthetic && cskd models
  cskd data prepare ava --root /data/AVA --out ./ava-parquet
  cskd quickstart --smoke
  cskd evaluate --model outputs/quickstart/models/cskd-student --model outputs/quickstart/models/cfa-teacher-scorer \\
      --dataset outputs/quickstart/synthava --out outputs/evaluation
  cskd push --model outputs/quickstart/models/cskd-student --repo-id me/cskd-synthava-student

Run `cskd COMMAND --help` for the options of a command."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cskd",
        description="Image aesthetics assessment with CSKD models (CLIP-based semi-supervised distillation).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # In the order `cskd --help` lists them.
    score_command_parser(subparsers)
    zeroshot_command_parser(subparsers)
    probe_command_parser(subparsers)
    analyze_command_parser(subparsers)
    export_command_parser(subparsers)
    convert_command_parser(subparsers)
    models_command_parser(subparsers)
    init_command_parser(subparsers)
    data_command_parser(subparsers)
    quickstart_command_parser(subparsers)
    evaluate_command_parser(subparsers)
    push_command_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a `cskd` command; errors a user can fix (a missing file, a bad value) print one line and return 2."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Exception as error:
        if not is_user_error(error):
            raise
        if isinstance(error, ModuleNotFoundError) and (error.name or "").split(".")[0] in torch_extra_modules():
            error = f"this needs {error.name}, which comes with the torch extra: pip install 'cskd-hf[torch]'"
        print(f"cskd {args.command}: error: {error}", file=sys.stderr)
        return 2


# Distributions whose module has another name.
MODULE_NAMES = {"pyyaml": "yaml"}


def torch_extra_modules() -> set[str]:
    """The modules of the `torch` extra, which a torch-free install (`pip install cskd-hf`) lacks, read from the
    installed package's metadata; `cskd score` with an exported graph needs none of them."""
    from importlib import metadata

    try:
        requirements = metadata.requires("cskd-hf") or []
    except metadata.PackageNotFoundError:
        return set()
    names = (re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower() for requirement in requirements
             if re.search(r"extra\s*==\s*['\"]torch['\"]", requirement))  # fmt: skip
    return {MODULE_NAMES.get(name, name.replace("-", "_")) for name in names}


def is_user_error(error: Exception) -> bool:
    """Whether `main` reports `error` in one line: an OSError, ValueError or ImportError, or a model folder whose
    weights do not fit its config (`MismatchedWeightsError`, looked up only if its module was loaded: a command that
    raised it did load it, and the parser must not load torch)."""
    if isinstance(error, (OSError, ValueError, ImportError)):
        return True
    modeling = sys.modules.get("cskd_hf.models.cskd.modeling_cskd")
    return modeling is not None and isinstance(error, modeling.MismatchedWeightsError)
