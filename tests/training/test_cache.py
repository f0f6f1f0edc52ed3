"""`cskd_hf.training.cache`: the teacher cache's file format (also as CFA wrote it before SKD had one) and the
check of its description. SKD's runs with it are in test_skd.py."""

import json

import pytest
import torch
from safetensors.torch import save_file

from cskd_hf.training.cache import TeacherCache


def test_a_cfa_cache_written_before_skd_had_one_still_loads(tmp_path):
    """Caches written before the SKD cache existed store their tensor as "embeddings"; a description that differs
    from the recorded one is refused, naming the value."""
    embeddings = torch.randn(3, 8)
    save_file({"embeddings": embeddings}, str(tmp_path / "rank0.safetensors"))
    (tmp_path / "rank0.keys.json").write_text(json.dumps(["a", "b", "c"]))
    description = {"teacher": "openai/clip-vit-large-patch14", "target": "cls", "image_size": 224}
    (tmp_path / "complete.json").write_text(json.dumps({**description, "num_shards": 1}))

    cache = TeacherCache(tmp_path, description)
    assert len(cache) == 3 and torch.equal(cache.lookup(["c", "a"]), embeddings[[2, 0]])
    with pytest.raises(ValueError, match="teacher 'openai/clip-vit-large-patch14' in the cache, 'other/clip' here"):
        TeacherCache(tmp_path, {**description, "teacher": "other/clip"})
