"""Small builders shared by the tests."""

import os
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch
from transformers import CLIPImageProcessor, CLIPModel, CLIPVisionConfig, CLIPVisionModelWithProjection

from cskd_hf import CSKDConfig
from cskd_hf.synthetic.tiny_clip import build_tokenizer, tiny_clip_config

TINY_IMAGE_SIZE = 64
CSKD = str(Path(sys.executable).parent / "cskd")


def tiny_config(architecture: str = "test_resnet", **kwargs) -> CSKDConfig:
    """A config over one of timm's tiny `test_*` architectures, at a 64 px input."""
    return CSKDConfig(architecture=architecture, image_size=TINY_IMAGE_SIZE, **kwargs)


def same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Whether two state dicts hold the same keys and bit-identical tensors."""
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def write_awkward_images(out_dir, photo) -> dict:
    """Write `photo` (an RGB uint8 array) in the forms real photo folders contain, good and bad.

    Returns `{kind: path}`; the kinds "truncated", "empty" and "text" cannot be decoded.
    """
    from pathlib import Path

    import numpy as np
    from PIL import Image

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rgb = Image.fromarray(photo)
    paths = {kind: out_dir / name for kind, name in AWKWARD_FILES.items()}

    rgb.save(paths["jpeg"], quality=90)
    rgb.save(paths["png"])
    rgb.convert("CMYK").save(paths["cmyk"], quality=95)
    rgb.convert("L").save(paths["gray"])
    rgb.convert("P", palette=Image.Palette.ADAPTIVE).save(paths["palette"], transparency=0)
    rgba = rgb.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(paths["alpha"])
    gray16 = (np.asarray(rgb.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    Image.fromarray(gray16).save(paths["gray16"])
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the camera was turned; viewers rotate 90 degrees clockwise
    rgb.rotate(90, expand=True).save(paths["exif_rotated"], quality=90, exif=exif)

    paths["truncated"].write_bytes(paths["jpeg"].read_bytes()[:2000])
    paths["empty"].write_bytes(b"")
    paths["text"].write_text("this is not a picture\n")
    return paths


AWKWARD_FILES = {
    "jpeg": "photo.jpg",
    "png": "photo.png",
    "cmyk": "cmyk.jpg",
    "gray": "gray.png",
    "palette": "palette.png",
    "alpha": "alpha.png",
    "gray16": "gray16.png",
    "exif_rotated": "exif_rotated.jpg",
    "truncated": "truncated.jpg",
    "empty": "empty.jpg",
    "text": "text.jpg",
}
UNREADABLE = ("truncated", "empty", "text")


class PicklePayload:
    """Unpickling this creates `marker`: what a hostile `.pth`, `.bin` or `.pkl` could do with any code it likes."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def write_hostile_pickle(path, marker):
    """A torch file that runs code when unpickled: `torch.load(path, weights_only=False)` creates `marker`."""
    torch.save({"state_dict": PicklePayload(marker)}, path)
    return path


def write_tiny_clip(
    out_dir: str | os.PathLike,
    image_size: int = 32,
    *,
    texts: list[str] | None = None,
    patch_size: int = 8,
    projection_dim: int = 24,
    seed: int = 0,
) -> Path:
    """A tiny random CLIP with its image processor, saved as a Hub-style folder: every test's CLIP comes from here.

    Without `texts`, only the image tower with its projection, in the shape transformers' own tests use: all that
    CFA's teacher or the LAION predictor's tower needs. With `texts`, the whole `CLIPModel` that
    `cskd_hf.synthetic.tiny_clip` pretrains (at this input, patch and projection size) and a word-level tokenizer
    that knows the texts' words: what zero-shot prompting needs.
    """
    out_dir = Path(out_dir)
    torch.manual_seed(seed)
    if texts is None:
        config = CLIPVisionConfig(
            image_size=image_size, patch_size=patch_size, hidden_size=32, projection_dim=projection_dim,
            num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, hidden_act="quick_gelu",
        )  # fmt: skip
        model = CLIPVisionModelWithProjection(config)
    else:
        tokenizer = build_tokenizer(texts)
        config = tiny_clip_config(tokenizer, image_size)
        config.vision_config.patch_size = patch_size
        config.projection_dim = projection_dim
        model = CLIPModel(config)
        tokenizer.save_pretrained(out_dir)
    model.save_pretrained(out_dir)
    size = {"height": image_size, "width": image_size}
    CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size=size).save_pretrained(out_dir)
    return out_dir


def write_tiny_laion(out_dir) -> dict:
    """A tiny random CLIP image tower (224 px, 768-d embedding, as ViT-L/14's) and a LAION predictor MLP checkpoint
    (the published definition, pyiqa's copy, with weights wide enough that photos get different scores), converted.

    Returns `{"clip", "mlp", "tower", "checkpoint", "converted"}`.
    """
    from pyiqa.archs.laion_aes_arch import MLP

    from cskd_hf.convert import convert_laion_aesthetic

    out_dir = Path(out_dir)
    clip = write_tiny_clip(out_dir / "clip", image_size=224, patch_size=32, projection_dim=768)  # seeds torch with 0
    mlp = MLP(768).eval()
    with torch.no_grad():
        for layer in mlp.layers:
            if isinstance(layer, torch.nn.Linear):
                layer.weight.normal_(std=2.0 / layer.in_features**0.5)
        mlp.layers[-1].bias.fill_(5.0)  # centred on AVA's scale
    checkpoint = out_dir / "sac+logos+ava1-l14-linearMSE.pth"
    torch.save(mlp.state_dict(), checkpoint)  # the file format of the published weights: a bare state dict
    tower = CLIPVisionModelWithProjection.from_pretrained(clip).eval()
    converted = convert_laion_aesthetic(checkpoint, out_dir / "converted", clip=clip)
    return {"clip": clip, "mlp": mlp, "tower": tower, "checkpoint": checkpoint, "converted": converted}


def write_unlabeled_parquet(path, columns: dict):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path
