import pytest
import torch
from transformers import AutoTokenizer, CLIPModel

from cskd_hf.synthetic.synthava import generate
from cskd_hf.synthetic.tiny_clip import build_tokenizer, retrieval_recall, tiny_clip_config, train_tiny_clip
from cskd_hf.teachers.clip import ClipTeacher


def test_word_level_tokenizer_ends_each_caption_with_the_last_id(tmp_path):
    tokenizer = build_tokenizer(["a dark, blurry photo of a small red star", "a photo of a ring"])
    ids = tokenizer("a dark photo of a ring")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id == len(tokenizer) - 1
    assert tokenizer.unk_token_id not in ids
    tokenizer.save_pretrained(tmp_path)
    assert AutoTokenizer.from_pretrained(tmp_path)("a dark photo of a ring")["input_ids"] == ids


@pytest.mark.slow  # about 40 s
def test_tiny_clip_retrieves_held_out_captions_far_above_chance(tmp_path):
    world = generate({"unlabeled": 2500, "test": 150}, seed=0)
    train_tiny_clip(world["unlabeled"], tmp_path, epochs=4, batch_size=64, progress=False)
    recall = retrieval_recall(tmp_path, world["test"])
    assert recall["recall@5"] > 4 * recall["chance@5"], recall


def test_a_full_clip_folder_is_a_cfa_teacher_with_its_projection_size(tmp_path):
    """A saved `CLIPModel` keeps `projection_dim` at its top level; the teacher must not fall back to 512."""
    tokenizer = build_tokenizer(["a photo of a ring"])
    CLIPModel(tiny_clip_config(tokenizer)).save_pretrained(tmp_path)
    for target, size in (("cls", 96), ("projected", 64)):
        teacher = ClipTeacher(tmp_path, target=target)
        assert teacher.embedding_size == ClipTeacher.embedding_size_of(tmp_path, target) == size
        assert teacher(torch.zeros(2, 3, 64, 64)).shape == (2, size)


def test_classifier_teachers_see_the_students_view_resized_only_for_fixed_size_models(tmp_path):
    import timm
    from safetensors.torch import save_file

    from cskd_hf.teachers.classifier import load_teacher, teacher_embedding_size

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
