"""The stand-in for ImageNet pretraining: a timm classifier trained on SynthAVA's content classes.

Like an ImageNet model, it learns *what* is in the picture, under strong photometric augmentation (exposure,
contrast, colour, blur, noise), which makes its features largely blind to the style that decides the aesthetic score.
The result is saved as an ordinary timm checkpoint file, loaded through the same offline path as real ImageNet
weights: `CSKDConfig(backbone_checkpoint_path=...)` or `--backbone_checkpoint_path`.
"""

import logging
import math
from pathlib import Path

import timm
import torch
from datasets import Image as ImageFeature
from safetensors.torch import save_file
from torch.utils.data import DataLoader
from torchvision.transforms import v2
from tqdm.auto import tqdm

from ..data.images import decode_image

logger = logging.getLogger(__name__)


def photometric_augmentation(mean, std) -> v2.Compose:
    """Strong style augmentation: what ImageNet training does to make a classifier style-invariant."""
    return v2.Compose(
        [
            v2.ToImage(),
            v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True),
            v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.3, hue=0.05),
            v2.RandomApply([v2.GaussianBlur(kernel_size=5, sigma=(0.1, 1.0))], p=0.2),
            v2.Lambda(lambda x: (x + torch.randn_like(x) * torch.rand(1) * 0.04).clamp(0, 1)),
            v2.Normalize(mean=mean, std=std),
        ]
    )


def pretrain_content_classifier(
    dataset,
    architecture: str,
    out_file: str | Path,
    num_classes: int,
    epochs: int = 2,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    seed: int = 0,
    num_workers: int = 2,
    progress: bool = True,
    model_args: dict | None = None,
) -> dict:
    """Train `architecture` (built with `timm.create_model`'s keyword arguments `model_args`) to classify the
    `content` column from `image`; save its backbone as a timm checkpoint.

    Returns:
        The training accuracy of the last epoch.
    """
    torch.manual_seed(seed)
    model = timm.create_model(architecture, pretrained=False, num_classes=num_classes, **(model_args or {}))
    config = timm.data.resolve_data_config({}, model=model)
    augment = photometric_augmentation(config["mean"], config["std"])
    dataset = dataset.cast_column("image", ImageFeature(decode=False)).select_columns(["image", "content"])

    def collate(rows):
        images = torch.stack([augment(decode_image(r["image"]["bytes"], r["image"]["path"])) for r in rows])
        return images, torch.tensor([r["content"] for r in rows])

    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=num_workers,
        collate_fn=collate,
        generator=torch.Generator().manual_seed(seed),
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.05)
    total = epochs * len(loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / total)))
    model.train()
    correct = seen = 0
    with tqdm(total=total, desc=f"content pretraining {architecture}", disable=not progress) as bar:
        for _ in range(epochs):
            correct = seen = 0
            for images, labels in loader:
                logits = model(images)
                loss = torch.nn.functional.cross_entropy(logits, labels)
                loss.backward()
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
                correct += (logits.argmax(-1) == labels).sum().item()
                seen += len(labels)
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}", accuracy=f"{correct / seen:.2f}")
    model.reset_classifier(0)
    Path(out_file).parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out_file))
    return {"content_accuracy": correct / max(seen, 1)}


__all__ = ["photometric_augmentation", "pretrain_content_classifier"]
