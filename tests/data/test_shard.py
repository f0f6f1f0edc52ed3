"""`cskd data shard`: the shards hold the source's images at the training resolution, with labels and ids; the
trainers' batches from them equal those from the source; a re-run resumes; unreadable images are skipped and named;
processes x workers read disjoint shards."""

import json
import shutil

import pytest
import torch
from datasets import load_dataset
from datasets.distributed import split_dataset_by_node
from PIL import Image

from cskd_hf import CSKDImageProcessor
from cskd_hf.cli import main
from cskd_hf.data.batching import LabeledImages, UnlabeledBatches, collate_labeled, image_key
from cskd_hf.data.prepare import load_labeled
from cskd_hf.data.samples import sample_photo
from cskd_hf.data.shard import number_of_shards, shard, shard_bounds
from cskd_hf.data.unlabeled import load_unlabeled
from cskd_hf.synthetic.synthava import write_synthava
from tests.data.benchmark_files import AVA_CORRUPT, AVA_MISSING, write_ava
from tests.data.corpus import batch_classes, iid_distinct_classes

PROCESSOR = CSKDImageProcessor(image_size=32)  # resizes to 37 x 37: tiny shards, same code as 256 x 256
PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "coins", "camera", "page", "moon", "horse", "hubble_deep_field"]


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    """Real photos of different sizes and formats (some grayscale, one PNG), one unreadable file in a subfolder."""
    folder = tmp_path_factory.mktemp("photos")
    for index, name in enumerate(PHOTOS * 2):
        image = Image.fromarray(sample_photo(name)).resize((90 + 7 * index, 60 + 3 * index))
        image.save(folder / f"{index:02d}-{name}.{'png' if index == 3 else 'jpg'}", quality=90)
    (folder / "broken").mkdir()
    (folder / "broken" / "not-a-photo.jpg").write_bytes(b"this is text")
    return folder


def stream_batches(source: str, seed: int = 3) -> list[dict]:
    """The unlabeled batches a trainer draws (shuffled stream, random crops and flips) in one epoch."""
    batches = UnlabeledBatches(load_unlabeled([source], seed=seed, shuffle_buffer=8), PROCESSOR, 4, seed=seed)
    batches.set_epoch(1)
    return list(batches)


def test_shard_count_is_a_multiple_for_disjoint_readers_and_bounds_match_datasets():
    assert number_of_shards(250_000, 2000, 64) == 128
    assert number_of_shards(3_000_000, 2000, 64) == 1536
    assert number_of_shards(10, 2000, 64) == 10  # fewer images than readers: one each
    assert [shard_bounds(10, index, 4) for index in range(4)] == [(0, 3), (3, 6), (6, 8), (8, 10)]


def test_an_unreadable_image_is_skipped_and_named(photo_folder, tmp_path):
    out = tmp_path / "shards"
    plan = shard(str(photo_folder), out, PROCESSOR, num_workers=2, progress=False)
    assert plan.splits == {"train": {"images": 21, "shards": 21, "skipped": 1}}  # fewer images than 64 readers
    assert (out / "skipped_images.tsv").read_text().splitlines() == [
        "split\timage_id\terror",
        f"train\tbroken/not-a-photo.jpg\t{photo_folder}/broken/not-a-photo.jpg: not a recognised image format",
    ]
    assert sum(1 for _ in load_unlabeled([str(out)])) == 20


@pytest.mark.parametrize("fmt", ["parquet", "webdataset"])
def test_unlabeled_shards_give_the_sources_batches(photo_folder, tmp_path, fmt):
    images = tmp_path / "photos"
    shutil.copytree(photo_folder, images, ignore=shutil.ignore_patterns("broken"))
    out = tmp_path / "shards"
    # In the source's order (`--no-shuffle`): each file and each one-image shard is then the same data source.
    shard(str(images), out, PROCESSOR, fmt=fmt, image_format="png", num_workers=1, progress=False, shuffle=False)
    from_source, from_shards = stream_batches(str(images)), stream_batches(str(out))
    assert [batch["num_read"] for batch in from_shards] == [4, 4, 4, 4, 4]
    source_pixels = torch.cat([batch["pixel_values"] for batch in from_source])
    shard_pixels = torch.cat([batch["pixel_values"] for batch in from_shards])
    assert shard_pixels.shape == (20, 3, 32, 32)
    # Lossless shards of the processor's resize: the same images in the same order, the same crops and flips.
    assert torch.equal(shard_pixels, source_pixels)


def test_labeled_shards_keep_labels_and_ids_and_give_the_sources_training_batches(tmp_path):
    source = tmp_path / "synthava"
    write_synthava(source, splits={"train": 24, "test": 8}, image_size=48, seed=0)
    out = tmp_path / "shards"
    assert main(["data", "shard", str(source), "--out", str(out), "--no-progress", "--rows-per-shard", "5",
                 "--shard-multiple", "2", "--image-processor", str(_processor_dir(tmp_path))]) == 0  # fmt: skip
    plan = json.loads((out / "shards.json").read_text())
    assert plan["complete"] and plan["labeled"] and plan["image_format"] == "jpeg"
    assert {split: info["shards"] for split, info in plan["splits"].items()} == {"train": 6, "test": 2}

    original, sharded = load_labeled(source), load_labeled(out)
    for split in ("train", "test"):
        for column in ("image_id", "distribution", "mean_score", "num_votes", "bin_scores", "split"):
            assert sharded[split][column] == original[split][column]
        assert sharded[split][0]["image"].size == (37, 37)

    def training_batch(dataset):
        images = LabeledImages(dataset, PROCESSOR, train=True, seed=5)
        images.set_epoch(2)
        return collate_labeled([images[index] for index in range(len(images))])

    expected, got = training_batch(original["train"]), training_batch(sharded["train"])
    assert torch.equal(got["labels"], expected["labels"]) and torch.equal(got["mean_scores"], expected["mean_scores"])
    # JPEG at quality 95 of the resized image: the same crops and flips, pixels within a few grey levels.
    grey_levels = (
        (got["pixel_values"] - expected["pixel_values"]).abs() * torch.tensor(PROCESSOR.image_std)[:, None, None] * 255
    )
    assert grey_levels.mean() < 2.0  # 1.5 measured on SynthAVA's noisy renders, resized to 37 px
    assert grey_levels.mean() > 0  # re-encoded: not the same bytes, so the comparison above is not vacuous


def _processor_dir(tmp_path):
    folder = tmp_path / "processor"
    PROCESSOR.save_pretrained(folder)
    return folder


def test_ava_root_shards_skip_the_truncated_image_and_report_the_missing_one(tmp_path):
    out = tmp_path / "shards"
    plan = shard(f"ava:{write_ava(tmp_path / 'AVA')}", out, PROCESSOR, shard_multiple=1, num_workers=1, progress=False)
    # 8 rows: one image missing (dropped by the loader), one truncated (found by decoding it, while sharding).
    assert plan.splits["train"] == {"images": 4, "shards": 1, "skipped": 0}
    assert plan.splits["test"] == {"images": 3, "shards": 1, "skipped": 1}
    skipped = (out / "skipped_images.tsv").read_text()
    assert f"test\t{AVA_CORRUPT}\t" in skipped and "cannot decode image" in skipped
    assert AVA_MISSING in (out / "dropped_images.tsv").read_text()  # dropped by the AVA loader: no such file
    assert sorted(load_labeled(out)["test"]["image_id"]) == ["953958", "954175"]


def test_a_rerun_writes_only_the_missing_shards_and_refuses_another_plan(photo_folder, tmp_path):
    out = tmp_path / "shards"
    shard(str(photo_folder), out, PROCESSOR, shard_multiple=4, rows_per_shard=3, num_workers=1, progress=False)
    files = sorted((out / "data").glob("*.parquet"))
    assert len(files) == 8
    written_at = {path.name: path.stat().st_mtime_ns for path in files}
    files[2].unlink()  # as a killed run leaves it: one shard not written (partial files have other names)
    (out / "data" / f".partial-123-{files[2].name}").write_bytes(b"half a shard")
    plan_file = json.loads((out / "shards.json").read_text())
    (out / "shards.json").write_text(json.dumps({**plan_file, "complete": False}))
    with pytest.raises(ValueError, match="not all written yet"):
        load_unlabeled([str(out)])

    shard(str(photo_folder), out, PROCESSOR, shard_multiple=4, rows_per_shard=3, num_workers=1, progress=False)
    rewritten = {
        path.name for path in (out / "data").glob("*.parquet") if path.stat().st_mtime_ns != written_at.get(path.name)
    }
    assert rewritten == {files[2].name}
    assert sum(1 for _ in load_unlabeled([str(out)], shuffle_buffer=0)) == 20
    with pytest.raises(ValueError, match="another plan"):
        shard(str(photo_folder), out, CSKDImageProcessor(image_size=64), shard_multiple=4, rows_per_shard=3,
              progress=False)  # fmt: skip


def test_processes_times_workers_read_disjoint_shards_that_cover_the_corpus(tmp_path, caplog):
    images = tmp_path / "photos"
    images.mkdir()
    for index in range(32):  # 8 shards of 4
        photo = Image.fromarray(sample_photo(PHOTOS[index % len(PHOTOS)])).resize((40 + index, 40))
        photo.save(images / f"{index:02d}.jpg")
    out = tmp_path / "shards"
    shard(str(images), out, PROCESSOR, rows_per_shard=4, shard_multiple=4, num_workers=1, progress=False)
    seen = []
    for rank in range(2):  # 2 processes x 2 DataLoader workers, as datasets hands shards to them
        stream = split_dataset_by_node(load_unlabeled([str(out)], seed=1), rank=rank, world_size=2)
        loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=2)
        seen.append([image_key(row["image"]) for row in loader])
    assert "not a multiple" not in caplog.text
    assert len(seen[0]) == len(seen[1]) == 16
    assert not set(seen[0]) & set(seen[1])
    assert len(set(seen[0]) | set(seen[1])) == 32


def test_labeled_sources_refuse_webdataset_and_float_resizing_processors(tmp_path, photo_folder):
    source = tmp_path / "synthava"
    write_synthava(source, splits={"train": 4}, image_size=32, seed=0)
    with pytest.raises(ValueError, match="labeled shards are Parquet"):
        shard(str(source), tmp_path / "out", PROCESSOR, fmt="webdataset", num_workers=1, progress=False)
    with pytest.raises(ValueError, match="cannot be sharded"):
        shard(
            str(photo_folder),
            tmp_path / "out2",
            CSKDImageProcessor(resize_input="float"),
            num_workers=1,
            progress=False,
        )


def test_parquet_and_webdataset_sources_shard_again_keeping_the_ids(photo_folder, tmp_path):
    first, second, third = tmp_path / "parquet", tmp_path / "tars", tmp_path / "from-tars"
    shard(str(photo_folder), first, PROCESSOR, shard_multiple=4, rows_per_shard=3, num_workers=1, progress=False)
    smaller = CSKDImageProcessor(image_size=16)  # a smaller model's resize, from the 37-px shards
    shard(
        str(first),
        second,
        smaller,
        fmt="webdataset",
        shard_multiple=2,
        rows_per_shard=8,
        num_workers=1,
        progress=False,
    )
    shard(f"webdataset:{second}/train-*.tar", third, smaller, shard_multiple=1, num_workers=1, progress=False)
    ids = sorted(str(path.relative_to(photo_folder)) for path in photo_folder.glob("*.*"))
    for folder in (first, third):
        table = load_dataset("parquet", data_files=str(folder / "data" / "*.parquet"), split="train")
        assert sorted(table["image_id"]) == ids
    sizes = {
        image.size for image in load_dataset("parquet", data_files=str(third / "data" / "*.parquet"))["train"]["image"]
    }
    assert sizes == {(18, 18)}
    assert sum(1 for _ in load_unlabeled([str(second)])) == 20


@pytest.mark.parametrize("world_size", [1, 2])
def test_shards_of_class_folders_are_a_global_shuffle(class_folders, tmp_path, world_size):
    """`cskd data shard` writes an unlabeled source in a seeded random order (recorded in `shards.json`), so batches
    of its shards mix classes as a random draw does; `--no-shuffle` keeps the class order, which a shuffle buffer
    cannot undo."""
    out = tmp_path / "shards"
    shard(str(class_folders), out, PROCESSOR, rows_per_shard=100, shard_multiple=8, num_workers=2, progress=False)
    assert json.loads((out / "shards.json").read_text())["shuffle_seed"] == 0
    expected = iid_distinct_classes()
    for rank in range(world_size):
        stream = load_unlabeled([str(out)], seed=0, shuffle_buffer=100, rank=rank, world_size=world_size)
        mean, _ = batch_classes(stream)
        assert abs(mean - expected) <= 0.1 * expected, (rank, mean, expected)

    in_order = tmp_path / "in-order"
    shard(str(class_folders), in_order, PROCESSOR, rows_per_shard=100, shard_multiple=8, num_workers=2,
          progress=False, shuffle=False)  # fmt: skip
    assert json.loads((in_order / "shards.json").read_text())["shuffle_seed"] is None
    mean, _ = batch_classes(load_unlabeled([str(in_order)], seed=0, shuffle_buffer=100))
    assert mean < 0.5 * expected  # shards of 2.5 classes each: batches of a few classes


def test_shards_written_before_shuffling_resume_in_their_order_and_refuse_a_shuffle(photo_folder, tmp_path):
    out = tmp_path / "shards"
    options = {"shard_multiple": 4, "rows_per_shard": 3, "num_workers": 1, "progress": False}
    shard(str(photo_folder), out, PROCESSOR, shuffle=False, **options)
    plan = json.loads((out / "shards.json").read_text())
    del plan["shuffle_seed"]  # as shards.json was written before shards were shuffled
    (out / "shards.json").write_text(json.dumps(plan))
    assert shard(str(photo_folder), out, PROCESSOR, shuffle=False, **options).shuffle_seed is None
    with pytest.raises(ValueError, match="--no-shuffle"):
        shard(str(photo_folder), out, PROCESSOR, **options)
