"""`cskd_hf.teachers.clip`: a full CLIP folder as a CFA teacher, with its projection size."""

import torch

from cskd_hf.teachers.clip import ClipTeacher
from tests.helpers import write_tiny_clip


def test_a_full_clip_folder_is_a_cfa_teacher_with_its_projection_size(tmp_path):
    """A saved `CLIPModel` keeps `projection_dim` at its top level; the teacher must not fall back to 512."""
    write_tiny_clip(tmp_path, image_size=64, texts=["a photo of a ring"], projection_dim=64)
    for target, size in (("cls", 96), ("projected", 64)):
        teacher = ClipTeacher(tmp_path, target=target)
        assert teacher.embedding_size == ClipTeacher.embedding_size_of(tmp_path, target) == size
        assert teacher(torch.zeros(2, 3, 64, 64)).shape == (2, size)
