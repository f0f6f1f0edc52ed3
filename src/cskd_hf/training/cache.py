"""A disk cache of the CFA teacher's embeddings, so the large CLIP forward is paid once per image, not once per epoch.

Each process embeds its own part of the corpus (the un-augmented, centre-cropped view) and writes one shard,
`rank<r>.safetensors` with the embeddings and `rank<r>.keys.json` with the image keys (`image_key`). Training then
looks targets up by key. The trade-off: the cached target is that of the fixed centre view, while a live teacher embeds
each augmented view the student sees.
"""

import json
import logging
from pathlib import Path

import torch
from accelerate import Accelerator
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..data.batching import UnlabeledBatches, worker_processes

logger = logging.getLogger(__name__)

COMPLETE_FILE = "complete.json"


def build_teacher_cache(
    cache_dir: str | Path,
    batches: UnlabeledBatches,
    teacher: torch.nn.Module,
    accelerator: Accelerator,
    num_workers: int,
    description: dict,
) -> None:
    """Embed this process's part of the stream with `teacher` and write its shard; all processes in parallel."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    if batches.train:
        raise ValueError("the teacher cache embeds the un-augmented view: build it from batches with train=False")
    batches.set_epoch(0)
    keys, embeddings = [], []
    loader = DataLoader(batches, batch_size=None, **worker_processes(batches, num_workers))
    for batch in tqdm(loader, desc="teacher cache", disable=not accelerator.is_local_main_process):
        if batch["pixel_values"] is None:
            continue
        embeddings.append(teacher(batch["pixel_values"].to(accelerator.device)).cpu())
        keys += batch["keys"]
    rank = accelerator.process_index
    stacked = torch.cat(embeddings) if embeddings else torch.zeros(0, 0)
    save_file({"embeddings": stacked.contiguous()}, str(cache_dir / f"rank{rank}.safetensors"))
    (cache_dir / f"rank{rank}.keys.json").write_text(json.dumps(keys))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (cache_dir / COMPLETE_FILE).write_text(json.dumps({**description, "num_shards": accelerator.num_processes}))
    accelerator.wait_for_everyone()


def cache_is_complete(cache_dir: str | Path) -> bool:
    return (Path(cache_dir) / COMPLETE_FILE).exists()


class TeacherCache:
    """Teacher embeddings looked up by image key, from every shard of a complete cache."""

    def __init__(self, cache_dir: str | Path):
        cache_dir = Path(cache_dir)
        if not cache_is_complete(cache_dir):
            raise FileNotFoundError(f"{cache_dir} is not a complete teacher cache (no {COMPLETE_FILE})")
        self.description = json.loads((cache_dir / COMPLETE_FILE).read_text())
        keys, tensors = [], []
        for shard in sorted(cache_dir.glob("rank*.safetensors")):
            embeddings = load_file(str(shard))["embeddings"]
            shard_keys = json.loads(shard.with_name(shard.name.replace(".safetensors", ".keys.json")).read_text())
            if len(shard_keys):
                tensors.append(embeddings)
                keys += shard_keys
        self.embeddings = torch.cat(tensors)
        self.index = {key: row for row, key in enumerate(keys)}

    def __len__(self) -> int:
        return len(self.index)

    def lookup(self, keys: list[str]) -> torch.Tensor:
        missing = [key for key in keys if key not in self.index]
        if missing:
            raise KeyError(f"{len(missing)} images are not in the teacher cache (first: {missing[0]}); rebuild it")
        return self.embeddings[[self.index[key] for key in keys]]


__all__ = ["TeacherCache", "build_teacher_cache", "cache_is_complete"]
