"""The tiny CLIP pretrained on SynthAVA: its word-level tokenizer and what contrastive pretraining gives."""

import pytest
from transformers import AutoTokenizer

from cskd_hf.synthetic.synthava import generate
from cskd_hf.synthetic.tiny_clip import build_tokenizer, retrieval_recall, train_tiny_clip


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
