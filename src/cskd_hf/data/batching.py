"""From datasets to model batches: decoding, the image processor's transforms, and collation.

Both the labeled and the streamed unlabeled data are made reproducible for exact resumption: the random augmentation
of an image depends only on (seed, epoch, position), never on which DataLoader worker handled it or on what ran
before. An image that cannot be decoded is skipped and counted in the batch (`num_skipped`), never fatal.
"""

import hashlib
import logging
import multiprocessing
import os
import select
import sys
import threading
import time
from dataclasses import dataclass

import datasets
import numpy as np
import torch
from datasets import Dataset, IterableDataset
from datasets import Image as ImageFeature
from torch.utils.data import get_worker_info

from ..models.cskd import CSKDImageProcessor
from .images import ImageReadError, decode_image

logger = logging.getLogger(__name__)


def example_seed(seed: int, epoch: int, position: int) -> int:
    """A well-mixed 32-bit seed for the augmentation of one image."""
    return int(np.random.SeedSequence([seed, epoch, position]).generate_state(1)[0])


def decode_or_skip(encoded: dict, draft_size: int | None = None):
    """Decode one `{"bytes", "path"}` image (see `open_image` for `draft_size`); None, with a logged warning naming
    it, if it cannot be read."""
    try:
        return decode_image(encoded.get("bytes"), encoded.get("path"), draft_size=draft_size)
    except ImageReadError as error:
        logger.warning(f"skipping image: {error}")
        return None


def transform_image(
    encoded: dict,
    image_processor: CSKDImageProcessor,
    train: bool,
    seed: int,
    draft_size: int | None = None,
    uint8: bool = False,
) -> torch.Tensor | None:
    """Decode one `{"bytes", "path"}` image and transform it with its own RNG; None (logged) if it cannot be read.

    With `uint8`, the transform stops at the crop (and flip): a `uint8` tensor, a quarter of the bytes of floats to
    hand from a DataLoader worker to the training process, which normalises the batch on its device with
    `image_processor.to_pixel_values`, bit-identically (a processor that resizes float pixels gives floats in [0, 1]).
    """
    image = decode_or_skip(encoded, draft_size)
    if image is None:
        return None
    # Isolated so that the augmentation neither reads nor disturbs the process's RNG (dropout, sampling, ...).
    with torch.random.fork_rng(devices=[]):
        # The CPU generator alone: `torch.manual_seed` also seeds CUDA lazily, which cost 0.1-0.4 ms an image.
        torch.default_generator.manual_seed(seed)
        if uint8:
            return image_processor.resize_and_crop(train=train)(image)
        return image_processor(image, train=train)["pixel_values"][0]


def iter_labeled_images(dataset: Dataset):
    """`(RGB PIL image, mean score)` for each readable row of a labeled split, in order; unreadable ones are logged
    and skipped. For models with their own preprocessing (CLIP baselines)."""
    dataset = dataset.cast_column("image", ImageFeature(decode=False))
    for row in dataset.select_columns(["image", "mean_score"]):
        image = decode_or_skip(row["image"])
        if image is not None:
            yield image, row["mean_score"]


class LabeledImages(torch.utils.data.Dataset):
    """A labeled `datasets.Dataset` as model inputs: `pixel_values`, `labels` (vote distributions), `mean_scores`."""

    def __init__(
        self,
        dataset: Dataset,
        image_processor: CSKDImageProcessor,
        train: bool = False,
        seed: int = 0,
        uint8: bool = False,
        draft: bool = False,
    ):
        self.dataset = dataset.cast_column("image", ImageFeature(decode=False))
        self.image_processor = image_processor
        self.train = train
        self.seed = seed
        self.uint8 = uint8  # crops, normalised on the device (`transform_image`)
        self.draft_size = image_processor.draft_size(draft)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict | None:
        row = self.dataset[index]
        seed = example_seed(self.seed, self.epoch, index)
        pixel_values = transform_image(
            row["image"], self.image_processor, self.train, seed, self.draft_size, self.uint8
        )
        if pixel_values is None:
            return None
        return {
            "pixel_values": pixel_values,
            "labels": torch.tensor(row["distribution"], dtype=torch.float32),
            "mean_scores": torch.tensor(row["mean_score"], dtype=torch.float32),
        }


def collate_labeled(items: list[dict | None]) -> dict:
    """Stack the readable examples; `num_skipped` counts the unreadable ones. A batch may end up empty."""
    readable = [item for item in items if item is not None]
    if not readable:
        return {"pixel_values": None, "labels": None, "mean_scores": None, "num_skipped": len(items)}
    batch = {key: torch.stack([item[key] for item in readable]) for key in readable[0]}
    batch["num_skipped"] = len(items) - len(readable)
    return batch


def evaluation_loader(
    dataset: Dataset, image_processor: CSKDImageProcessor, batch_size: int = 64, num_workers: int = 0
):
    """A labeled split in order, centre-cropped, in batches of `collate_labeled` (empty batches possible)."""
    return torch.utils.data.DataLoader(
        LabeledImages(dataset, image_processor, train=False),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate_labeled,
    )


class UnlabeledBatches(torch.utils.data.IterableDataset):
    """Batches of transformed images from a stream of encoded images, exactly resumable, any number of workers.

    Use with `DataLoader(batches, batch_size=None, num_workers=K)`. The stream is cut into consecutive chunks of
    `batch_size` images; worker k decodes chunks k, k + K, ..., and the DataLoader returns them in order, so batch j
    always holds the j-th chunk whatever K is. Each batch says how many stream items it used (`num_read`), which is
    what `resume_from` takes, and the `keys` of its images (see `image_key`). With `drop_last`, a final chunk
    shorter than `batch_size` is left out. With `draft`, large JPEGs decode at a reduced size that still covers the
    processor's resize (`image_processor.draft_size`): several times faster on camera-sized photos, and the pixels
    differ slightly from a full decode's, so it is off by default. With `uint8`, batches hold the `uint8` crops, to
    be normalised where they are used (`image_processor.to_pixel_values`).
    """

    def __init__(
        self,
        stream: IterableDataset,
        image_processor: CSKDImageProcessor,
        batch_size: int,
        train: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        draft: bool = False,
        uint8: bool = False,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.drop_last = drop_last
        self.stream = stream
        self.image_processor = image_processor
        self.batch_size = batch_size
        self.train = train
        self.seed = seed
        self.draft_size = image_processor.draft_size(draft)
        self.uint8 = uint8  # crops, normalised on the device (`transform_image`)
        self.epoch = 0
        self.start_chunk = 0
        self.short_last_chunk = 0

    def set_epoch(self, epoch: int) -> None:
        """Start a pass over the stream (reshuffled for the epoch) from its beginning."""
        self.epoch = epoch
        self.start_chunk = 0
        self.short_last_chunk = 0

    def resume_from(self, epoch: int, num_read: int) -> None:
        """Continue epoch `epoch` after the first `num_read` stream items (the sum of `num_read` of the batches).

        Only the stream's last chunk can be short, so a `num_read` that is not a whole number of chunks says that the
        epoch's stream was read to its end (a checkpoint taken right after that chunk); iterating checks it.
        """
        self.epoch = epoch
        self.start_chunk = -(-num_read // self.batch_size)
        self.short_last_chunk = num_read % self.batch_size

    def __iter__(self):
        worker = get_worker_info()
        num_workers, worker_id = (worker.num_workers, worker.id) if worker is not None else (1, 0)
        self.stream.set_epoch(self.epoch)
        # `IterableDataset.iter` reads the whole stream in every worker (iterating the stream itself inside a worker
        # would give each worker only some shards, and batch order would then depend on the worker count).
        chunks_seen = 0
        for chunk_index, chunk in enumerate(self.stream.iter(batch_size=self.batch_size)):
            chunks_seen = chunk_index + 1
            if self.short_last_chunk and (
                chunk_index >= self.start_chunk
                or (chunk_index == self.start_chunk - 1 and len(chunk["image"]) != self.short_last_chunk)
            ):
                self._not_the_checkpoints_stream(f"chunk {chunk_index} of this stream holds {len(chunk['image'])}")
            # Workers take turns from the first chunk to read, which the DataLoader asks worker 0 for.
            if chunk_index < self.start_chunk or (chunk_index - self.start_chunk) % num_workers != worker_id:
                continue
            encoded_images = chunk["image"]
            if self.drop_last and len(encoded_images) < self.batch_size:
                return  # a short last batch (BatchNorm cannot train on a single image)
            first_position = chunk_index * self.batch_size
            images = [
                transform_image(
                    encoded,
                    self.image_processor,
                    self.train,
                    example_seed(self.seed, self.epoch, i),
                    self.draft_size,
                    self.uint8,
                )
                for i, encoded in enumerate(encoded_images, start=first_position)
            ]
            readable = [i for i, image in enumerate(images) if image is not None]
            yield {
                "pixel_values": torch.stack([images[i] for i in readable]) if readable else None,
                "keys": [image_key(encoded_images[i]) for i in readable],
                "num_read": len(images),
                "num_skipped": len(images) - len(readable),
            }
        if self.short_last_chunk and chunks_seen < self.start_chunk:
            self._not_the_checkpoints_stream(f"this stream has only {chunks_seen} chunks")

    def _not_the_checkpoints_stream(self, what: str):
        read = (self.start_chunk - 1) * self.batch_size + self.short_last_chunk
        raise ValueError(
            f"resuming after {read} items of a stream read to its end, but {what}: the stream is not the one the "
            "checkpoint was taken on"
        )


def worker_processes(dataset, num_workers: int) -> dict:
    """DataLoader arguments for `num_workers` worker processes started by a fork server (none for 0 workers).

    Training loops make a new DataLoader iterator each epoch while the previous one's Python threads (queue feeders)
    may still be exiting, and a worker forked at that moment can hang forever inside CPython's after-fork code (seen
    here in about 1 run in 50 of a 2-process CFA run: the worker blocked in `PyOS_AfterFork_Child` on the
    interpreter's thread-list lock, its rank waiting for a batch, the other rank in a collective). A fork server is
    single-threaded, so its children inherit no held lock. The server imports this process's `cskd_hf` modules once
    (and with them torch, datasets, accelerate), so that a worker, which runs the main script again as any non-fork
    worker does, finds them imported. A script must therefore start training under `if __name__ == "__main__":`.
    """
    if num_workers == 0:
        return {"num_workers": 0}
    context = multiprocessing.get_context("forkserver")
    loaded = sorted(name for name in sys.modules if name.split(".")[0] == "cskd_hf")
    context.set_forkserver_preload([type(dataset).__module__, *loaded])  # no effect once the server runs
    settings = WorkerSettings(
        training_pid=os.getpid(),
        log_level=logging.getLogger("cskd_hf").getEffectiveLevel(),
        datasets_thread_shutdown_sleep=datasets.config.SLEEP_TIME_ON_THREADS_SHUTDOWN,
    )
    return {"num_workers": num_workers, "multiprocessing_context": context, "worker_init_fn": settings.apply}


@dataclass(frozen=True)
class WorkerSettings:
    """What a fresh worker must take over from the training process (a forked one inherited it)."""

    training_pid: int
    log_level: int
    datasets_thread_shutdown_sleep: float  # the quickstart lowers `datasets`' 5 s pause after each stream pass

    def apply(self, worker_id: int) -> None:
        """The DataLoader's `worker_init_fn`. The worker also exits as soon as the training process ends: torch's
        workers stop when their parent dies, but a fork server's workers have the server as parent, which lives as
        long as any of its workers (without this, the workers of a killed rank lived on)."""
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("cskd_hf").setLevel(self.log_level)
        datasets.config.SLEEP_TIME_ON_THREADS_SHUTDOWN = self.datasets_thread_shutdown_sleep
        threading.Thread(
            target=_exit_when_ended, args=(self.training_pid,), name="end_with_training_process", daemon=True
        ).start()


def _exit_when_ended(pid: int) -> None:
    try:
        ended = os.pidfd_open(pid)  # readable once the process has ended
    except (AttributeError, OSError):  # not Linux, or the process is already gone: look every second
        while _is_running(pid):
            time.sleep(1)
    else:
        select.select([ended], [], [])
    os._exit(1)


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def image_key(encoded: dict) -> str:
    """A stable identity of a streamed image: the hash of its bytes, or its path when only the path is stored."""
    data = encoded.get("bytes")
    return hashlib.sha1(data).hexdigest() if data else str(encoded.get("path"))


__all__ = [
    "LabeledImages",
    "UnlabeledBatches",
    "WorkerSettings",
    "collate_labeled",
    "decode_or_skip",
    "evaluation_loader",
    "example_seed",
    "image_key",
    "iter_labeled_images",
    "transform_image",
    "worker_processes",
]
