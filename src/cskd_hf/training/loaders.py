"""What the trainers read: the labeled splits and their loaders, the unlabeled stream, and one epoch of either, with
the agreement between processes that keeps them taking the same steps."""

import logging
from collections.abc import Iterator

import numpy as np
import torch
from accelerate import Accelerator
from datasets import Dataset
from torch.utils.data import DataLoader

from ..data.batching import LabeledImages, UnlabeledBatches, collate_labeled, worker_processes
from ..data.prepare import load_labeled
from ..data.unlabeled import load_unlabeled
from ..hub import public_name
from .arguments import CommonArguments, DataArguments, UnlabeledArguments
from .common import TrainerState, all_processes

logger = logging.getLogger(__name__)


def labeled_splits(data: DataArguments, seed: int) -> tuple[Dataset, Dataset, str]:
    """The train and validation splits, and a sentence saying which split validated (for logs and the card).

    The validation split chooses `best/`, so it is never the test split unless asked for by name: without a
    `validation_split`, a seeded random part of train validates (`validation_size`, as pyiqa carves 2,000 images
    from AVA's train; at most a tenth of train).
    """
    dataset_dict = load_labeled(data.dataset)
    if data.train_split not in dataset_dict:
        raise ValueError(f"{data.dataset} has no split {data.train_split!r}; it has {list(dataset_dict)}")
    train = dataset_dict[data.train_split]
    if data.validation_split in dataset_dict:
        if data.validation_split == "test":
            logger.warning("validating on the test split: best/ is then chosen on test")
        return train, dataset_dict[data.validation_split], f"Validated on the `{data.validation_split}` split."
    count = min(data.validation_size, len(train) // 10)
    if count < 1:
        raise ValueError(
            f"{data.dataset} has no {data.validation_split!r} split and too few train images to carve one"
        )
    # Indices drawn here, not with `train_test_split`, which writes index files next to the dataset's cache.
    carved = set(np.random.default_rng(seed).permutation(len(train))[:count].tolist())
    note = (
        f"Validated on {count} images carved from `{data.train_split}` (seed {seed}): {public_name(data.dataset)} has "
        f"no `{data.validation_split}` split, and the test split never chooses the model."
    )
    logger.info(note)
    kept = [index for index in range(len(train)) if index not in carved]
    return train.select(kept), train.select(sorted(carved)), note


def labeled_loader(
    dataset, image_processor, args: CommonArguments, train: bool, batch_size: int, augment: bool | None = None
) -> DataLoader:
    """A training loader (`train`: shuffled each epoch, whole batches, `uint8` crops; random crop and flip unless
    `augment` is False) or an evaluation one (in order, centre crop, normalised)."""
    augment = train if augment is None else augment
    # A training loader's workers hand on uint8 crops, which the loop normalises on the device (`step_batch`).
    images = LabeledImages(
        dataset,
        image_processor,
        train=train and augment,
        seed=args.seed,
        uint8=train,
        draft=train and args.draft_decode,
    )
    return DataLoader(
        images,
        batch_size=batch_size,
        shuffle=train,
        drop_last=train,
        collate_fn=collate_labeled,
        **worker_processes(images, args.num_workers),
        # Its own generator: creating an iterator (e.g. after resuming mid-epoch) must not draw from the global RNG,
        # which dropout uses, or a resumed run would diverge from an uninterrupted one.
        generator=torch.Generator().manual_seed(args.seed),
    )


def unlabeled_stream(args: UnlabeledArguments, seed: int, accelerator: Accelerator):
    """This process's part of the unlabeled corpus.

    Sharded here and kept out of `accelerator.prepare`, which would shard it a second time.
    """
    return load_unlabeled(
        args.unlabeled,
        args.unlabeled_probabilities,
        seed=seed,
        shuffle_buffer=args.shuffle_buffer,
        rank=accelerator.process_index,
        world_size=accelerator.num_processes,
    )


def stream_loader(batches: UnlabeledBatches, num_workers: int, seed: int) -> DataLoader:
    # Its own generator: creating the iterator must not draw from the global RNG (dropout's), or a resumed run would
    # diverge from an uninterrupted one.
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(batches, batch_size=None, generator=generator, **worker_processes(batches, num_workers))


def labeled_epoch(accelerator: Accelerator, loader: DataLoader, state: TrainerState, epoch: int) -> Iterator[dict]:
    """The batches of one epoch of a prepared labeled loader, from where `state` says a resumed run stopped.

    A batch with no readable image on some process is skipped by all (they must take the same steps). When the epoch
    is read to its end, `state` moves to the next one.
    """
    loader.set_epoch(epoch)
    loader.dataset.set_epoch(epoch)
    batches = accelerator.skip_first_batches(loader, state.batches_in_epoch) if state.batches_in_epoch else loader
    for batch in batches:
        state.batches_in_epoch += 1
        state.skipped_images += int(batch["num_skipped"])
        if all_processes(accelerator, batch["pixel_values"] is not None):
            yield batch
    state.epoch, state.batches_in_epoch = epoch + 1, 0


# Per step, what all processes agree on before training on a batch of the stream.
EXHAUSTED, EMPTY, READY = 0, 1, 2


def stream_epoch(
    accelerator: Accelerator, batches: UnlabeledBatches, state: TrainerState, epoch: int, num_workers: int, seed: int
) -> Iterator[dict]:
    """One pass over this process's part of the unlabeled stream (the epoch of CFA, and of SKD without labels), from
    where `state` says a resumed run stopped.

    The first process to run out of images ends the epoch for all, and a batch with no readable image on some process
    is skipped by all: they must take the same steps. When the epoch ends, `state` moves to the next one.
    """
    batches.resume_from(epoch, state.stream_read)
    iterator = iter(stream_loader(batches, num_workers, seed))
    while True:
        batch = next(iterator, None)
        status = EXHAUSTED if batch is None else (EMPTY if batch["pixel_values"] is None else READY)
        agreed = accelerator.gather(torch.tensor([status], device=accelerator.device)).min().item()
        if agreed == EXHAUSTED:
            break
        state.stream_read += batch["num_read"]
        state.skipped_images += batch["num_skipped"]
        if agreed == READY:
            yield batch
    state.epoch, state.stream_read = epoch + 1, 0


class UnlabeledFeed:
    """SKD's unlabeled batches, one per labeled batch: cycles through the stream (a new pass when it ends), resumable
    from `state`."""

    def __init__(self, batches: UnlabeledBatches, num_workers: int, seed: int, state: TrainerState):
        self.batches, self.num_workers, self.seed, self.state = batches, num_workers, seed, state
        self.batches.resume_from(state.stream_epoch, state.stream_read)
        self.iterator = None

    def next(self) -> dict:
        for _ in range(2):
            if self.iterator is None:
                self.iterator = iter(stream_loader(self.batches, self.num_workers, self.seed))
            batch = next(self.iterator, None)
            if batch is not None:
                self.state.stream_read += batch["num_read"]
                self.state.skipped_images += batch["num_skipped"]
                return batch
            self.state.stream_epoch, self.state.stream_read = self.state.stream_epoch + 1, 0
            self.batches.set_epoch(self.state.stream_epoch)
            self.iterator = None
        raise RuntimeError("the unlabeled stream is empty")


__all__ = [
    "UnlabeledFeed",
    "labeled_epoch",
    "labeled_loader",
    "labeled_splits",
    "stream_epoch",
    "stream_loader",
    "unlabeled_stream",
]
