"""Classifier teachers: timm checkpoints as frozen feature extractors."""

import pytest
import timm
import torch
from safetensors.torch import save_file

from cskd_hf.teachers.classifier import load_teacher, teacher_embedding_size


def test_classifier_teachers_see_the_students_view_resized_only_for_fixed_size_models(tmp_path):
    sizes = {}
    for architecture in ("test_resnet", "test_vit"):
        checkpoint = tmp_path / f"{architecture}.safetensors"
        save_file(timm.create_model(architecture, num_classes=9).state_dict(), str(checkpoint))
        teacher = load_teacher(f"timm:{architecture}@{checkpoint}")
        features = teacher(torch.randn(2, 3, 48, 48))
        assert features.shape == (2, teacher_embedding_size(f"timm:{architecture}"))
        sizes[architecture] = teacher.view.teacher_size
    assert sizes == {"test_resnet": None, "test_vit": 160}  # a CNN keeps the 48 px view; the ViT needs its 160 px
    with pytest.raises(FileNotFoundError, match="no checkpoint file"):
        load_teacher(f"timm:test_resnet@{tmp_path / 'missing.safetensors'}")
