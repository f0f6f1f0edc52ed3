"""A disk cache of a frozen teacher's outputs on the unlabeled stream, so the teacher's forward pass is paid once per
image, not once per epoch: CFA's CLIP embeddings, SKD's predicted distributions.

Each process runs the teacher on its own part of the corpus (the un-augmented, centre-cropped view) and writes one
shard, `rank<r>.safetensors` with the outputs and `rank<r>.keys.json` with the image keys (`image_key`). Training
then looks targets up by key. The trade-off: the cached target is that of the fixed centre view, while a live teacher
sees each augmented view the student sees.
"""

import json
import logging
from collections.abc import Callable
from pathlib import Path

import torch
from accelerate import Accelerator
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..data.batching import UnlabeledBatches, worker_processes

logger = logging.getLogger(__name__)

COMPLETE_FILE = "complete.json"
# The tensor of a shard; caches written before SKD had one (CFA's only) call it "embeddings".
TARGETS, LEGACY_TARGETS = "targets", "embeddings"


def build_teacher_cache(
    cache_dir: str | Path,
    batches: UnlabeledBatches,
    teacher: Callable[[torch.Tensor], torch.Tensor],
    accelerator: Accelerator,
    num_workers: int,
    description: dict,
) -> None:
    """Run `teacher` on this process's part of the stream and write its shard; all processes in parallel.

    `description` says what the targets depend on (teacher, view, resolution): `TeacherCache` checks it on loading.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    if batches.train:
        raise ValueError("the teacher cache holds the un-augmented view: build it from batches with train=False")
    batches.set_epoch(0)
    keys, targets = [], []
    loader = DataLoader(batches, batch_size=None, **worker_processes(batches, num_workers))
    for batch in tqdm(loader, desc="teacher cache", disable=not accelerator.is_local_main_process):
        if batch["pixel_values"] is None:
            continue
        targets.append(teacher(batch["pixel_values"].to(accelerator.device)).cpu())
        keys += batch["keys"]
    rank = accelerator.process_index
    stacked = torch.cat(targets) if targets else torch.zeros(0, 0)
    save_file({TARGETS: stacked.contiguous()}, str(cache_dir / f"rank{rank}.safetensors"))
    (cache_dir / f"rank{rank}.keys.json").write_text(json.dumps(keys))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (cache_dir / COMPLETE_FILE).write_text(json.dumps({**description, "num_shards": accelerator.num_processes}))
    accelerator.wait_for_everyone()


def cache_is_complete(cache_dir: str | Path) -> bool:
    return (Path(cache_dir) / COMPLETE_FILE).exists()


class TeacherCache:
    """Teacher outputs looked up by image key, from every shard of a complete cache.

    With `description`, a cache built for anything else (another teacher, view or resolution: any value of
    `description` that differs from the one recorded at build time) is refused with a `ValueError` naming the
    differences.
    """

    def __init__(self, cache_dir: str | Path, description: dict | None = None):
        cache_dir = Path(cache_dir)
        if not cache_is_complete(cache_dir):
            raise FileNotFoundError(f"{cache_dir} is not a complete teacher cache (no {COMPLETE_FILE})")
        self.description = json.loads((cache_dir / COMPLETE_FILE).read_text())
        if description is not None:
            differences = _differences(self.description, json.loads(json.dumps(description)))  # lists, as stored
            if differences:
                raise ValueError(
                    f"the teacher cache {cache_dir} was built for another teacher or view ({'; '.join(differences)}):"
                    " give another cache folder, or delete this one to rebuild it"
                )
        keys, tensors = [], []
        for shard in sorted(cache_dir.glob("rank*.safetensors")):
            stored = load_file(str(shard))
            shard_keys = json.loads(shard.with_name(shard.name.replace(".safetensors", ".keys.json")).read_text())
            if len(shard_keys):
                tensors.append(stored[TARGETS] if TARGETS in stored else stored[LEGACY_TARGETS])
                keys += shard_keys
        self.targets = torch.cat(tensors)
        self.index = {key: row for row, key in enumerate(keys)}

    def __len__(self) -> int:
        return len(self.index)

    def lookup(self, keys: list[str]) -> torch.Tensor:
        missing = [key for key in keys if key not in self.index]
        if missing:
            raise KeyError(f"{len(missing)} images are not in the teacher cache (first: {missing[0]}); rebuild it")
        return self.targets[[self.index[key] for key in keys]]


def _differences(built: dict, wanted: dict, prefix: str = "") -> list[str]:
    """`name: built value vs wanted value` for each value of `wanted` that `built` does not hold (nested dicts by
    their keys, so that one changed option of the image processor is named, not the whole processor)."""
    found = []
    for key, value in wanted.items():
        recorded = built.get(key)
        if isinstance(value, dict) and isinstance(recorded, dict):
            found += _differences(recorded, value, f"{prefix}{key}.")
        elif recorded != value:
            found.append(f"{prefix}{key} {recorded!r} in the cache, {value!r} here")
    return found


__all__ = ["TeacherCache", "build_teacher_cache", "cache_is_complete"]
