"""`cskd data`: dataset tools (`prepare` the benchmarks, `shard` any source, `synth` SynthAVA)."""

import argparse


def data_command_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("data", help="prepare datasets", description="Dataset tools.")
    data_subparsers = parser.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)
    data_prepare_command_parser(data_subparsers)
    data_shard_command_parser(data_subparsers)
    data_synth_command_parser(data_subparsers)
    return parser


def data_prepare_command_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "prepare",
        help="convert AVA, AADB or PARA from their original files to Parquet shards",
        description=(
            "Read a benchmark from its original distribution files and write it as Parquet shards (images embedded) "
            "with a dataset card, loadable with datasets.load_dataset(OUT). Unreadable images are dropped and listed "
            "in OUT/dropped_images.tsv. AVA and PARA may not be redistributed: keep the output private."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("dataset", choices=("ava", "aadb", "para"))
    parser.add_argument("--root", required=True, help="folder with the original files (e.g. AVA.txt and images/)")
    parser.add_argument("--out", required=True, help="folder to write the Parquet dataset into")
    parser.add_argument(
        "--split",
        default="official",
        choices=("official", "paper", "ids"),
        help="AVA and AADB: the released split, or the CSKD paper's seeded random one with its training count "
        "(AVA 237,623, AADB 8,345); AVA: ids from --test-ids",
    )
    parser.add_argument("--test-ids", help="AVA only: file of test image ids (with --split ids)")
    parser.add_argument(
        "--validation-size",
        type=float,
        default=0,
        help="AVA, and AADB with --split paper: train images for validation",
    )
    parser.add_argument("--seed", type=int, default=0, help="AVA and AADB: seed of the random splits")
    parser.add_argument("--per-user", action="store_true", help="PARA only: use the per-user PARA-Images.csv")
    parser.add_argument(
        "--verify", default="decode", choices=("decode", "exists", "none"), help="how to check the images"
    )
    parser.add_argument("--num-workers", type=int, help="threads checking images")
    parser.set_defaults(func=data_prepare_command)
    return parser


def data_prepare_command(args: argparse.Namespace) -> int:
    from ..data.prepare import prepare

    options = {"verify": args.verify, "num_workers": args.num_workers}
    validation_size = int(args.validation_size) if args.validation_size >= 1 else args.validation_size
    if args.dataset == "ava":
        options |= {"split": args.split, "test_ids_file": args.test_ids, "seed": args.seed}
        options["validation_size"] = validation_size
    elif args.dataset == "aadb":
        if args.split == "ids":
            raise ValueError("--split ids is for AVA; AADB takes official or paper")
        options |= {"split": args.split, "seed": args.seed, "validation_size": validation_size}
    elif args.dataset == "para":
        options["per_user"] = args.per_user
    dataset_dict = prepare(args.dataset, args.root, args.out, **options)
    sizes = ", ".join(f"{split} {len(dataset)}" for split, dataset in dataset_dict.items())
    print(f"wrote {args.dataset} to {args.out} ({sizes})")
    return 0


def data_shard_command_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "shard",
        help="rewrite any training source as shards at the training resolution (fast to decode)",
        description=(
            "Read a source the trainers read (an image folder, ava:/aadb:/para:ROOT, a `cskd data prepare` folder, "
            "Parquet files, WebDataset tars or a Hub dataset) and write its images resized as the model's image "
            "processor resizes them (256x256 by default), with their labels and ids, as Parquet or WebDataset "
            "shards: --dataset OUT or --unlabeled OUT reads them. Several processes; a re-run skips the shards "
            "already written; unreadable images are skipped and listed in OUT/skipped_images.tsv."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("source", help="what to shard, written as for --dataset or --unlabeled")
    parser.add_argument("--out", required=True, help="folder to write the shards into")
    parser.add_argument("--format", choices=("parquet", "webdataset"), default="parquet", help="shard files")
    parser.add_argument(
        "--image-processor",
        help="a model folder or Hub id whose image processor's resize to store; default: 256x256 (224-px models)",
    )
    parser.add_argument(
        "--image-format",
        choices=("jpeg", "png", "webp"),
        default="jpeg",
        help="how images are stored (png: lossless, batches identical to the source's)",
    )
    parser.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality (WebP: 100 is lossless)")
    parser.add_argument("--rows-per-shard", type=int, default=2000, help="at most this many images a shard...")
    parser.add_argument(
        "--shard-multiple",
        type=int,
        default=64,
        help="...in a number of shards that is a multiple of this (processes x DataLoader workers that divide it "
        "read disjoint shards)",
    )
    parser.add_argument("--num-workers", type=int, help="processes writing shards; default: one per core")
    parser.add_argument(
        "--no-shuffle",
        action="store_true",
        help="write an unlabeled source in its own order, not in a global random order (labeled splits keep theirs)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the global shuffle, recorded in shards.json")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=data_shard_command)
    return parser


def data_shard_command(args: argparse.Namespace) -> int:
    from transformers import AutoImageProcessor

    from ..data.shard import shard
    from ..models import cskd  # noqa: F401  (registers CSKDImageProcessor with AutoImageProcessor)

    image_processor = AutoImageProcessor.from_pretrained(args.image_processor) if args.image_processor else None
    plan = shard(
        args.source,
        args.out,
        image_processor=image_processor,
        fmt=args.format,
        image_format=args.image_format,
        quality=args.quality,
        rows_per_shard=args.rows_per_shard,
        shard_multiple=args.shard_multiple,
        num_workers=args.num_workers,
        progress=not args.no_progress,
        shuffle=not args.no_shuffle,
        seed=args.seed,
    )
    for split, info in plan.splits.items():
        written = info["images"] - info["skipped"]
        print(f"{split}: {written} images in {info['shards']} shards; {info['skipped']} unreadable skipped")
    if any(info["skipped"] for info in plan.splits.values()):
        print(f"the unreadable images are listed in {args.out}/skipped_images.tsv")
    return 0


def data_synth_command_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "synth",
        help="generate SynthAVA, the synthetic aesthetics dataset of the quickstart",
        description=(
            "Render SynthAVA: images whose latent aesthetic score depends on their style (exposure, contrast, "
            "blur, noise, colour harmony, placement, size) and not on their content, with AVA-like vote "
            "histograms and a caption each. Written as Parquet shards with a dataset card. Synthetic: it says "
            "nothing about real photos."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", required=True, help="folder to write the dataset into")
    for split, count in (("unlabeled", 50_000), ("train", 5_000), ("validation", 1_000), ("test", 2_000)):
        parser.add_argument(f"--{split}", type=int, default=count, help=f"images in the {split} split")
    parser.add_argument("--image-size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--seed", type=int, default=0, help="everything follows from it")
    parser.set_defaults(func=data_synth_command)
    return parser


def data_synth_command(args: argparse.Namespace) -> int:
    from ..synthetic.synthava import write_synthava

    splits = {"unlabeled": args.unlabeled, "train": args.train, "validation": args.validation, "test": args.test}
    dataset_dict = write_synthava(args.out, splits=splits, image_size=args.image_size, seed=args.seed)
    print(f"wrote SynthAVA to {args.out}: " + ", ".join(f"{k} {len(v)}" for k, v in dataset_dict.items()))
    return 0


__all__ = [
    "data_command_parser",
    "data_prepare_command",
    "data_prepare_command_parser",
    "data_shard_command",
    "data_shard_command_parser",
    "data_synth_command",
    "data_synth_command_parser",
]
