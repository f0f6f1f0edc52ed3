"""The `cskd` command line: thin wrappers over the library modules."""

import argparse
import sys
from collections.abc import Sequence

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
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    score = commands.add_parser(
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
    score.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="image files, folders (searched recursively for image files) or glob patterns (quote them)",
    )
    score.add_argument("--model", required=True, help="a saved model folder or a Hub model id")
    score.add_argument("--output", "-o", help="write results to this file (.csv or .jsonl); default: stdout as CSV")
    score.add_argument("--format", choices=("csv", "jsonl"), help="output format; default: from --output's extension")
    score.add_argument(
        "--batch-size", type=int, help="images per forward pass; default: 16 (torch, CPU), 32 (onnxruntime), 64 (GPU)"
    )
    score.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, mps, or auto (torch backend)")
    score.add_argument(
        "--num-workers", type=int, help="DataLoader processes decoding images (0: none); default: 1 per core, up to 8"
    )
    score.add_argument(
        "--backend",
        choices=("auto", "torch", "onnxruntime"),
        default="auto",
        help="auto: on the CPU with ONNX Runtime installed, the model's ONNX graph, exported on first use and cached "
        "($CSKD_ONNX_CACHE, default ~/.cache/huggingface/cskd_hf/onnx), else PyTorch; torch: the PyTorch model; "
        "onnxruntime: the graph that `cskd export` wrote into the model folder",
    )
    score.add_argument("--quantized", action="store_true", help="onnxruntime: use the int8 graph (export --quantize)")
    score.add_argument(
        "--no-draft",
        action="store_true",
        help="decode every JPEG at full size (by default large ones decode at 1/2-1/8 size, still above the input)",
    )
    score.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    score.set_defaults(func=_score)

    zeroshot = commands.add_parser(
        "zeroshot",
        help="score images, or evaluate on a dataset, with CLIP prompts and no training (baseline)",
        description=(
            "The zero-shot baseline of Hentschel et al. (2022): for each antonym prompt pair (good/bad photo, ...) "
            "the softmax of CLIP's image-text logits gives the positive prompt's probability; the score is their mean "
            "over the pairs, in [0, 1]. With --dataset, a linear map of positive slope fitted on its "
            "--calibration-split puts scores on the dataset's scale (the ranking is untouched) and, without PATHs, "
            "the metrics on --split are printed and written."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    zeroshot.add_argument("paths", nargs="*", metavar="PATH", help="image files, folders or glob patterns")
    zeroshot.add_argument("--clip", required=True, help="a CLIP checkpoint (Hub id or folder with its tokenizer)")
    zeroshot.add_argument("--prompts", help="prompt pairs: 'positive | negative' lines, or a JSON list of pairs")
    zeroshot.add_argument(
        "--dataset", help="a labeled dataset (folder, Hub id, ava:ROOT, ...) to calibrate or evaluate"
    )
    zeroshot.add_argument("--split", default="test", help="split to evaluate")
    zeroshot.add_argument("--calibration-split", default="train", help="split the score map is fitted on")
    zeroshot.add_argument("--output", "-o", help="CSV of scores (PATHs) or JSON of metrics (--dataset alone)")
    zeroshot.add_argument("--batch-size", type=int, default=32, help="images per forward pass")
    zeroshot.set_defaults(func=_zeroshot)

    probe = commands.add_parser(
        "probe",
        help="fit the CLIP linear probe (ridge regression on frozen CLIP embeddings), saved as a model (baseline)",
        description=(
            "The linear probe of Hentschel et al. (2022): CLIP image embeddings of the train and validation splits "
            "(cached with --cache), closed-form ridge regression on the mean score (or the log vote distribution), "
            "the penalty chosen on the validation split. Saved as a scoring model for cskd score / evaluate."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    probe.add_argument("--clip", required=True, help="a CLIP checkpoint (Hub id or folder)")
    probe.add_argument("--dataset", required=True, help="a labeled dataset with train and validation splits")
    probe.add_argument("--out", required=True, help="folder to save the probe model into")
    probe.add_argument("--target", choices=("mean", "distribution"), default="mean", help="what the ridge regresses")
    probe.add_argument("--cache", help="folder for the cached embeddings (reused by later runs)")
    probe.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    probe.add_argument("--num-workers", type=int, default=0, help="DataLoader processes decoding images")
    probe.set_defaults(func=_probe)

    analyze = commands.add_parser("analyze", help="diagnostics of trained backbones", description="Diagnostics.")
    analyze_commands = analyze.add_subparsers(dest="analyze_command", metavar="ANALYSIS", required=True)
    attention = analyze_commands.add_parser(
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
    attention.set_defaults(func=_analyze_attention)

    export = commands.add_parser(
        "export",
        help="export a scoring model to ONNX for `cskd score --backend onnxruntime`",
        description=(
            "Write the model's graph, from normalised pixel_values to the bin probabilities, mean and std score, to "
            "MODEL/onnx/model.onnx (and MODEL/onnx/model_quantized.onnx with --quantize). Decoding, resizing and "
            "normalisation stay in Python: the folder's image processor, as for the PyTorch model."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    export.add_argument("--model", required=True, help="a saved scoring model folder")
    export.add_argument("--format", choices=("onnx",), default="onnx", help="the export format")
    export.add_argument("--opset", type=int, default=18, help="ONNX opset version")
    batch = export.add_mutually_exclusive_group()
    batch.add_argument("--dynamic-batch", action="store_true", default=True, help="any batch size (the default)")
    batch.add_argument("--batch-size", type=int, help="a graph for exactly this batch size instead of any")
    export.add_argument(
        "--quantize", action="store_true", help="also write a copy with int8 matrix products (dynamic quantisation)"
    )
    export.set_defaults(func=_export)

    convert = commands.add_parser(
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
    convert.add_argument(
        "source", choices=("pyiqa-nima", "pyiqa-nima-vgg16", "laion-aesthetic"), help="what the checkpoint is"
    )
    convert.add_argument("checkpoint", help="the downloaded checkpoint file (.pth or .safetensors)")
    convert.add_argument("--out", required=True, help="folder to write the model into")
    convert.add_argument(
        "--clip", default="openai/clip-vit-large-patch14", help="laion-aesthetic: the CLIP, a Hub id or local folder"
    )
    convert.add_argument(
        "--spread", type=float, default=1.4, help="laion-aesthetic: σ of the distribution around the predicted score"
    )
    convert.add_argument(
        "--activation",
        choices=("linear", "relu"),
        help="laion-aesthetic: the MLP's kind (default: from the file name, *-linearMSE.pth or *-reluMSE.pth)",
    )
    convert.set_defaults(func=_convert)

    models = commands.add_parser(
        "models",
        help="list the models cskd-hf knows (converted predictors, the CSKD recipe's models)",
        description="The known model ids with architecture, input size, bins, source, licence and how to get them.",
    )
    models.add_argument("--kind", choices=("converted", "recipe"), help="only this kind")
    models.set_defaults(func=_models)

    init = commands.add_parser(
        "init",
        help="create a new, untrained scoring model folder",
        description=(
            "Write a new CSKDForAestheticScoring model and its image processor to a folder. The head is random: "
            "the model needs training before its scores mean anything. Backbone weights come from timm's ImageNet "
            "checkpoint with --backbone-pretrained (downloads) or from a local file with --backbone-checkpoint."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    init.add_argument("--out", required=True, help="folder to write the model into")
    init.add_argument("--architecture", default="mobilenetv2_100", help="timm model name")
    init.add_argument("--image-size", type=int, default=224, help="model input size in pixels")
    init.add_argument("--bin-scores", type=float, nargs="+", help="score of each bin (default: 1 2 ... 10, as AVA)")
    init.add_argument("--head-hidden-sizes", type=int, nargs="*", default=[], help="hidden layers of the head")
    pretrained = init.add_mutually_exclusive_group()
    pretrained.add_argument("--backbone-pretrained", action="store_true", help="load timm's ImageNet weights")
    pretrained.add_argument("--backbone-checkpoint", help="load backbone weights from this local timm checkpoint")
    init.set_defaults(func=_init)

    data = commands.add_parser("data", help="prepare datasets", description="Dataset tools.")
    data_commands = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)
    prepare = data_commands.add_parser(
        "prepare",
        help="convert AVA, AADB or PARA from their original files to Parquet shards",
        description=(
            "Read a benchmark from its original distribution files and write it as Parquet shards (images embedded) "
            "with a dataset card, loadable with datasets.load_dataset(OUT). Unreadable images are dropped and listed "
            "in OUT/dropped_images.tsv. AVA and PARA may not be redistributed: keep the output private."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    prepare.add_argument("dataset", choices=("ava", "aadb", "para"))
    prepare.add_argument("--root", required=True, help="folder with the original files (e.g. AVA.txt and images/)")
    prepare.add_argument("--out", required=True, help="folder to write the Parquet dataset into")
    prepare.add_argument(
        "--split",
        default="official",
        choices=("official", "paper", "ids"),
        help="AVA and AADB: the released split, or the CSKD paper's seeded random one with its training count "
        "(AVA 237,623, AADB 8,345); AVA: ids from --test-ids",
    )
    prepare.add_argument("--test-ids", help="AVA only: file of test image ids (with --split ids)")
    prepare.add_argument(
        "--validation-size",
        type=float,
        default=0,
        help="AVA, and AADB with --split paper: train images for validation",
    )
    prepare.add_argument("--seed", type=int, default=0, help="AVA and AADB: seed of the random splits")
    prepare.add_argument("--per-user", action="store_true", help="PARA only: use the per-user PARA-Images.csv")
    prepare.add_argument(
        "--verify", default="decode", choices=("decode", "exists", "none"), help="how to check the images"
    )
    prepare.add_argument("--num-workers", type=int, help="threads checking images")
    prepare.set_defaults(func=_data_prepare)

    shard = data_commands.add_parser(
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
    shard.add_argument("source", help="what to shard, written as for --dataset or --unlabeled")
    shard.add_argument("--out", required=True, help="folder to write the shards into")
    shard.add_argument("--format", choices=("parquet", "webdataset"), default="parquet", help="shard files")
    shard.add_argument(
        "--image-processor",
        help="a model folder or Hub id whose image processor's resize to store; default: 256x256 (224-px models)",
    )
    shard.add_argument(
        "--image-format",
        choices=("jpeg", "png", "webp"),
        default="jpeg",
        help="how images are stored (png: lossless, batches identical to the source's)",
    )
    shard.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality (WebP: 100 is lossless)")
    shard.add_argument("--rows-per-shard", type=int, default=2000, help="at most this many images a shard...")
    shard.add_argument(
        "--shard-multiple",
        type=int,
        default=64,
        help="...in a number of shards that is a multiple of this (processes x DataLoader workers that divide it "
        "read disjoint shards)",
    )
    shard.add_argument("--num-workers", type=int, help="processes writing shards; default: one per core")
    shard.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    shard.set_defaults(func=_data_shard)

    synth = data_commands.add_parser(
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
    synth.add_argument("--out", required=True, help="folder to write the dataset into")
    for split, count in (("unlabeled", 50_000), ("train", 5_000), ("validation", 1_000), ("test", 2_000)):
        synth.add_argument(f"--{split}", type=int, default=count, help=f"images in the {split} split")
    synth.add_argument("--image-size", type=int, default=64, help="image side in pixels")
    synth.add_argument("--seed", type=int, default=0, help="everything follows from it")
    synth.set_defaults(func=_data_synth)

    quickstart = commands.add_parser(
        "quickstart",
        help="run the whole CSKD method on SynthAVA with tiny models (CPU, minutes)",
        description=(
            "Generate SynthAVA, pretrain a tiny CLIP on its captions and timm backbones on its content classes (the "
            "stand-ins for OpenAI's CLIP and ImageNet weights), then run CFA, the teacher fine-tune and the students "
            "(NIMA*, CFA, KD, CSKD) with the project's trainers, evaluate them on the test split and write "
            "results.md, results.json, ier.png and the model folders. About 13-24 minutes on 2 cores; --smoke: 2-3. "
            "SynthAVA is synthetic: the numbers say nothing about real photographs."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    quickstart.add_argument("--out", default="outputs/quickstart", help="folder for data, models and results")
    quickstart.add_argument("--smoke", action="store_true", help="a much smaller run (about 2 minutes)")
    quickstart.add_argument("--seed", type=int, default=0, help="seed of the data and of every stage")
    quickstart.set_defaults(func=_quickstart)

    evaluate = commands.add_parser(
        "evaluate",
        help="evaluate one or more models on a labeled dataset, with plots",
        description=(
            "Score a labeled dataset split with each model and write, into --out: metrics.json per model (MSE, "
            "SRCC, PLCC, accuracy, IER per interval, N, model revision, dataset split), comparison.md, and the "
            "plots ier.png, scatter.png and histogram.png. The table is printed too."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    evaluate.add_argument("--model", action="append", required=True, help="a model folder or Hub id (repeatable)")
    evaluate.add_argument(
        "--dataset", required=True, help="a prepared dataset folder or Hub id, or ava:ROOT, aadb:ROOT, para:ROOT"
    )
    evaluate.add_argument("--split", default="test", help="split to evaluate")
    evaluate.add_argument("--out", default="outputs/evaluation", help="folder for metrics, table and plots")
    evaluate.add_argument("--tta", action="store_true", help="also evaluate with test-time augmentation (flip)")
    evaluate.add_argument(
        "--ier-threshold", type=float, help="IER's error t (default: 0.5 on AVA's 1-10, scaled to the dataset's range)"
    )
    evaluate.add_argument(
        "--interval-width", type=float, help="IER's interval width (default: 1 on AVA's 1-10, scaled likewise)"
    )
    evaluate.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    evaluate.add_argument("--num-workers", type=int, default=0, help="DataLoader processes decoding images")
    evaluate.add_argument("--device", default="auto", help="cpu, cuda, mps or auto")
    evaluate.set_defaults(func=_evaluate)

    push = commands.add_parser(
        "push",
        help="upload a model folder to the Hugging Face Hub",
        description=(
            "Upload a trained model to the Hub in one commit: weights, config, image processor, the modeling code "
            "that trust_remote_code needs, the model card (README.md), plots and metrics. Needs a Hub token "
            "(`hf auth login` or HF_TOKEN)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    push.add_argument("--model", required=True, help="the model folder to upload")
    push.add_argument("--repo-id", required=True, help="ORG/NAME on the Hub")
    push.add_argument("--private", action="store_true", help="create the repository as private")
    push.add_argument("--revision", help="branch to upload to (created if missing); default: main")
    push.set_defaults(func=_push)
    return parser


def _score(args: argparse.Namespace) -> int:
    from .scoring import score_to_file

    scored, failed = score_to_file(
        args.model,
        args.paths,
        output=args.output,
        fmt=args.format,
        batch_size=args.batch_size,
        device=args.device,
        num_workers=args.num_workers,
        progress=not args.no_progress,
        backend=args.backend,
        quantized=args.quantized,
        draft=not args.no_draft,
    )
    destination = f" to {args.output}" if args.output else ""
    print(f"scored {scored} of {scored + failed} images{destination}; {failed} could not be read", file=sys.stderr)
    return 0 if scored > 0 else 1


def _zeroshot(args: argparse.Namespace) -> int:
    import json

    from .baselines.zero_shot import (
        DEFAULT_PROMPTS,
        PromptTooLongError,
        evaluate_zero_shot,
        load_prompts,
        zero_shot_to_file,
    )
    from .data.prepare import load_labeled

    prompts = load_prompts(args.prompts) if args.prompts else DEFAULT_PROMPTS
    dataset_dict = load_labeled(args.dataset) if args.dataset else None
    if not args.paths and dataset_dict is None:
        raise ValueError("give image PATHs to score, or --dataset to evaluate on")
    try:
        if not args.paths:
            metrics = evaluate_zero_shot(args.clip, dataset_dict, args.split, args.calibration_split, prompts)
            print(
                f"zero-shot on {args.dataset} ({args.split}): SRCC {metrics['srcc']:.3f}, PLCC {metrics['plcc']:.3f}"
            )
            if args.output:
                with open(args.output, "w") as file:
                    json.dump(metrics, file, indent=1)
            return 0
        calibration = dataset_dict[args.calibration_split] if dataset_dict else None
        scored, _ = zero_shot_to_file(args.clip, args.paths, args.output, prompts, calibration, args.batch_size)
    except PromptTooLongError as error:  # found by the CLIP's tokenizer; the prompt file is named here
        raise ValueError(f"{args.prompts or 'the default prompts'}: {error}") from error
    return 0 if scored else 1


def _probe(args: argparse.Namespace) -> int:
    from .baselines.linear_probe import fit_linear_probe
    from .data.prepare import load_labeled

    report = fit_linear_probe(
        args.clip,
        load_labeled(args.dataset),
        args.out,
        target=args.target,
        cache_dir=args.cache,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
    )
    print(
        f"wrote the linear probe to {args.out}: penalty {report['penalty']:.3g}, "
        f"validation MSE {report['validation_mse']:.3f}"
    )
    return 0


def _analyze_attention(args: argparse.Namespace) -> int:
    from .analysis import analyze_models
    from .data.images import find_images, open_image

    if args.name and len(args.name) != len(args.model):
        raise ValueError(f"{len(args.name)} --name for {len(args.model)} --model")
    if args.images:
        images = [open_image(path) for path in find_images(args.images)[: args.num_images]]
    else:
        from .data.batching import iter_labeled_images
        from .data.prepare import load_labeled

        split = load_labeled(args.dataset)[args.split]
        images = [image for image, _ in iter_labeled_images(split.select(range(min(args.num_images, len(split)))))]
    results = analyze_models(args.model, images, args.out, names=args.name)
    for name, result in results.items():
        distances = ", ".join(f"{value:.1f}" for value in result["mean_attention_distance"])
        print(f"{name}: mean attention distance per layer (px) {distances}")
    print(f"wrote attention.md, attention.json and attention.png to {args.out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from .export import export_onnx

    written = export_onnx(
        args.model,
        opset=args.opset,
        dynamic_batch=args.batch_size is None,
        batch_size=args.batch_size or 1,
        quantize=args.quantize,
    )
    print("wrote " + ", ".join(map(str, written)))
    return 0


def _init(args: argparse.Namespace) -> int:
    from .models.cskd import CSKDConfig, CSKDForAestheticScoring, CSKDImageProcessor

    bin_scores = args.bin_scores or list(range(1, 11))
    config = CSKDConfig(
        architecture=args.architecture,
        image_size=args.image_size,
        num_bins=len(bin_scores),
        bin_scores=bin_scores,
        head_hidden_sizes=args.head_hidden_sizes,
        backbone_pretrained=args.backbone_pretrained,
        backbone_checkpoint_path=args.backbone_checkpoint,
    )
    model = CSKDForAestheticScoring.from_config(config)
    model.save_pretrained(args.out)
    CSKDImageProcessor.from_model_config(config).save_pretrained(args.out)
    print(f"wrote an UNTRAINED {args.architecture} scoring model to {args.out} (random head: train it before use)")
    return 0


def _data_prepare(args: argparse.Namespace) -> int:
    from .data.prepare import prepare

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


def _data_shard(args: argparse.Namespace) -> int:
    from transformers import AutoImageProcessor

    from .data.shard import shard

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
    )
    for split, info in plan.splits.items():
        written = info["images"] - info["skipped"]
        print(f"{split}: {written} images in {info['shards']} shards; {info['skipped']} unreadable skipped")
    if any(info["skipped"] for info in plan.splits.values()):
        print(f"the unreadable images are listed in {args.out}/skipped_images.tsv")
    return 0


def _data_synth(args: argparse.Namespace) -> int:
    from .synthetic.synthava import write_synthava

    splits = {"unlabeled": args.unlabeled, "train": args.train, "validation": args.validation, "test": args.test}
    dataset_dict = write_synthava(args.out, splits=splits, image_size=args.image_size, seed=args.seed)
    print(f"wrote SynthAVA to {args.out}: " + ", ".join(f"{k} {len(v)}" for k, v in dataset_dict.items()))
    return 0


def _quickstart(args: argparse.Namespace) -> int:
    from .synthetic.quickstart import run_quickstart

    run_quickstart(args.out, smoke=args.smoke, seed=args.seed)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_models

    evaluate_models(
        args.model,
        args.dataset,
        split=args.split,
        out_dir=args.out,
        tta=args.tta,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        device=args.device,
        ier_threshold=args.ier_threshold,
        interval_width=args.interval_width,
    )
    print(f"wrote metrics, comparison.md and plots to {args.out}")
    return 0


def _push(args: argparse.Namespace) -> int:
    from .hub import push_to_hub

    url = push_to_hub(args.model, args.repo_id, private=args.private, revision=args.revision)
    print(f"pushed {args.model} to {args.repo_id}: {url}")
    return 0


def _convert(args: argparse.Namespace) -> int:
    from .convert import CONVERTERS

    options = {"clip": args.clip, "spread": args.spread, "activation": args.activation}
    out = CONVERTERS[args.source](args.checkpoint, args.out, **(options if args.source == "laion-aesthetic" else {}))
    print(f"wrote {out}: cskd score PHOTOS --model {out}")
    return 0


def _models(args: argparse.Namespace) -> int:
    from .zoo import models_table

    print(models_table(args.kind))
    return 0


def _version() -> str:
    from . import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (OSError, ValueError, ImportError) as error:
        print(f"cskd {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
