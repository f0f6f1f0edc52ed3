"""`cskd quickstart`: the whole CSKD method on SynthAVA with tiny models."""

import argparse


def quickstart_command_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "quickstart",
        help="run the whole CSKD method on SynthAVA with tiny models (CPU, minutes)",
        description=(
            "Generate SynthAVA, pretrain a tiny CLIP on its captions and timm backbones on its content classes (the "
            "stand-ins for OpenAI's CLIP and ImageNet weights), then run CFA, the teacher fine-tune and the students "
            "(NIMA*, CFA, KD, CSKD) with the project's trainers, and the seed papers' premise rows (the CLIP probed "
            "and fine-tuned, the probe on the content-pretrained backbone); evaluate them on the test split and write "
            "results.md, results.json, ier.png and the model folders. The console shows one line per stage with the "
            "time left; each stage's own output goes to OUT/quickstart.log. About 22 minutes on 2 idle cores. "
            "SynthAVA is synthetic: the numbers say nothing about real photographs."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", default="outputs/quickstart", help="folder for data, models and results")
    parser.add_argument(
        "--full",
        action="store_true",
        help="also the remaining baselines (multi-teacher CFA, Hou et al.), the recipe's variants (CFA from cached "
        "targets, SKD with the live teacher) and the paper's Fig. 3 (about 40 minutes, estimated)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a CI-sized run (about 2 minutes), too small to compare rows; with --full, every stage at that size",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and of every stage")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the stages that an earlier run of the same seed and plan (--full aside) finished in OUT, with the "
        "times they took then: add --full to a finished run, or go on with a stopped one",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show each stage's own output (library logs, progress bars, warnings) on the console, not just the log",
    )
    parser.set_defaults(func=quickstart_command)
    return parser


def quickstart_command(args: argparse.Namespace) -> int:
    from ..synthetic.quickstart import run_quickstart

    run_quickstart(args.out, smoke=args.smoke, seed=args.seed, verbose=args.verbose, full=args.full, reuse=args.reuse)
    return 0


__all__ = ["quickstart_command", "quickstart_command_parser"]
