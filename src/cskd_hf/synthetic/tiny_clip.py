"""A tiny CLIP, pretrained contrastively on SynthAVA's image-caption pairs: the stand-in for OpenAI's CLIP offline.

It is an ordinary transformers `CLIPModel` with a word-level tokenizer built from the captions' vocabulary, saved as
a normal Hub-style folder, so CFA loads it through exactly the `--teacher` path that takes
`openai/clip-vit-large-patch14`, and the zero-shot baseline can prompt it.
"""

import logging
import math
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, PreTrainedTokenizerFast

from ..data.images import decode_image

logger = logging.getLogger(__name__)

SPECIAL_TOKENS = ["<pad>", "<unk>", "<bos>"]
EOS = "<eos>"
MAX_LENGTH = 32


def build_tokenizer(texts: list[str]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over the words of `texts` (punctuation split off), `<bos> ... <eos>` around each text.

    `<eos>` takes the last id: CLIP's text tower pools the hidden state at the end-of-text token.
    """
    words = sorted({word for text in texts for word in re.findall(r"\w+|[^\w\s]", text.lower())})
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + words + [EOS])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.normalizer = None
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"<bos> $A {EOS}", special_tokens=[("<bos>", vocab["<bos>"]), (EOS, vocab[EOS])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<bos>",
        eos_token=EOS,
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=MAX_LENGTH,
        do_lower_case=True,
    )


def tiny_clip_config(tokenizer: PreTrainedTokenizerFast, image_size: int = 64) -> CLIPConfig:
    return CLIPConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "max_position_embeddings": MAX_LENGTH,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        },
        vision_config={
            "image_size": image_size,
            "patch_size": 8,
            "hidden_size": 96,
            "intermediate_size": 192,
            "num_hidden_layers": 3,
            "num_attention_heads": 4,
        },
        projection_dim=64,
    )


def _collate_pairs(processor: CLIPImageProcessor, train: bool):
    def collate(rows):
        images = [decode_image(row["image"]["bytes"], row["image"]["path"]) for row in rows]
        if train:  # horizontal flips: no word of a caption depends on left and right
            images = [
                image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if np.random.random() < 0.5 else image
                for image in images
            ]
        return processor(images=images, return_tensors="pt")["pixel_values"], [row["caption"] for row in rows]

    return collate


def train_tiny_clip(
    dataset,
    out_dir: str | Path,
    epochs: int = 4,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    seed: int = 0,
    progress: bool = True,
) -> CLIPModel:
    """Pretrain a tiny CLIP contrastively on a dataset with `image` (undecoded) and `caption` columns; save it."""
    from datasets import Image as ImageFeature

    torch.manual_seed(seed)
    np.random.seed(seed)
    dataset = dataset.cast_column("image", ImageFeature(decode=False)).select_columns(["image", "caption"])
    tokenizer = build_tokenizer(dataset["caption"])
    image_size = decode_image(dataset[0]["image"]["bytes"], dataset[0]["image"]["path"]).size[0]
    model = CLIPModel(tiny_clip_config(tokenizer, image_size))
    processor = CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        collate_fn=_collate_pairs(processor, train=True),
        generator=torch.Generator().manual_seed(seed),
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.05)
    total = epochs * len(loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / total)))
    model.train()
    with tqdm(total=total, desc="tiny CLIP", disable=not progress) as bar:
        for _ in range(epochs):
            for pixel_values, captions in loader:
                text = tokenizer(captions, padding=True, return_tensors="pt")
                loss = model(pixel_values=pixel_values, **text, return_loss=True).loss
                loss.backward()
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return model


@torch.no_grad()
def retrieval_recall(model_dir: str | Path, dataset, k: int = 5) -> dict:
    """Image-to-caption retrieval among the pairs of `dataset`: recall@1 and @k, with chance levels.

    Captions that are word for word the same count as correct: they describe the image equally well.
    """
    from datasets import Image as ImageFeature
    from transformers import AutoTokenizer

    model = CLIPModel.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    processor = CLIPImageProcessor.from_pretrained(model_dir)
    dataset = dataset.cast_column("image", ImageFeature(decode=False))
    images = [decode_image(row["bytes"], row["path"]) for row in dataset["image"]]
    captions = list(dataset["caption"])
    image_embeds = model.get_image_features(**processor(images=images, return_tensors="pt"))
    text_embeds = model.get_text_features(**tokenizer(captions, padding=True, return_tensors="pt"))
    image_embeds = getattr(image_embeds, "pooler_output", image_embeds)
    text_embeds = getattr(text_embeds, "pooler_output", text_embeds)
    similarity = (
        torch.nn.functional.normalize(image_embeds, dim=-1) @ torch.nn.functional.normalize(text_embeds, dim=-1).T
    )
    ranking = similarity.argsort(dim=1, descending=True)
    same_caption = np.array([[a == b for b in captions] for a in captions])
    hits = np.take_along_axis(same_caption, ranking.numpy(), axis=1)
    return {
        "recall@1": float(hits[:, 0].mean()),
        f"recall@{k}": float(hits[:, :k].any(axis=1).mean()),
        "chance@1": float(same_caption.mean()),
        f"chance@{k}": float(np.mean([min(1.0, k * row.mean()) for row in same_caption])),
        "pairs": len(captions),
    }


__all__ = ["build_tokenizer", "retrieval_recall", "tiny_clip_config", "train_tiny_clip"]
