"""Reading images from disk the way photos really come: any mode, EXIF rotation, and files that are not images."""

import glob
import io
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".jfif", ".avif", ".heic"}
)


class ImageReadError(Exception):
    """An image file that cannot be decoded; the message names the file and the reason."""


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB `image`: transparency composited on white, CMYK converted, 16-bit data rescaled (not clipped)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # PIL's own conversion clips high-bit-depth values at 255; rescale by the type's range instead.
        values = np.asarray(image, dtype=np.float64)
        full_scale = (
            1.0 if image.mode == "F" else (65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0)
        )
        values = np.clip(values / full_scale * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(values, mode="L").convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def open_image(path: str | os.PathLike, draft_size: int | None = None) -> Image.Image:
    """Decode an image file into an upright 8-bit RGB PIL image.

    Args:
        draft_size: let a JPEG decode at 1/2, 1/4 or 1/8 of its size (libjpeg's DCT scaling, several times faster on
            camera photos) as long as both sides stay at least this many pixels; for callers that resize to a
            square of about this side right after. Other formats, and JPEGs not that large, decode fully.

    Raises:
        ImageReadError: the file is missing, empty, truncated or not an image; the message names the file.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError as error:
        raise ImageReadError(f"{path}: no such file") from error
    if size == 0:
        raise ImageReadError(f"{path}: empty file (0 bytes)")
    return _decode(path, name=str(path), draft_size=draft_size)


def decode_image(data: bytes | None, path: str | None = None, draft_size: int | None = None) -> Image.Image:
    """Decode encoded image bytes (or, without bytes, the file at `path`) as `open_image` does, `draft_size`
    included.

    This is the form `datasets` stores images in (`{"bytes": ..., "path": ...}` with `Image(decode=False)`).
    """
    if data is None:
        if path is None:
            raise ImageReadError("<unnamed image>: neither bytes nor a path")
        return open_image(path, draft_size=draft_size)
    if len(data) == 0:
        raise ImageReadError(f"{path or '<bytes>'}: empty image data (0 bytes)")
    return _decode(io.BytesIO(data), name=path or "<bytes>", draft_size=draft_size)


def _decode(source: Path | io.BytesIO, name: str, draft_size: int | None = None) -> Image.Image:
    try:
        with Image.open(source) as image:
            if draft_size and image.format == "JPEG":
                # The square target makes EXIF rotation irrelevant; the mode is left as the file has it.
                image.draft(None, (draft_size, draft_size))
            image = ImageOps.exif_transpose(image)
            image.load()
            return to_rgb(image)
    except Image.UnidentifiedImageError as error:
        raise ImageReadError(f"{name}: not a recognised image format") from error
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise ImageReadError(f"{name}: cannot decode image ({error})") from error


def find_images(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Expand files, folders (recursively, image extensions only) and glob patterns into a list of paths.

    Files named explicitly are kept whatever their extension, so that a bad one is reported rather than skipped.
    The order is that of `inputs`, each folder or glob sorted; duplicates are dropped.

    Raises:
        FileNotFoundError: an input matches nothing.
    """
    found: dict[Path, None] = {}
    for item in inputs:
        item = str(item)
        path = Path(item)
        if path.is_dir():
            matches = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        elif path.exists():
            matches = [path]
        elif glob.has_magic(item):
            matches = sorted(
                Path(p) for p in glob.glob(item, recursive=True) if Path(p).suffix.lower() in IMAGE_EXTENSIONS
            )
            if not matches:
                raise FileNotFoundError(f"{item}: the pattern matches no image file")
        else:
            raise FileNotFoundError(f"{item}: no such file or folder")
        found.update(dict.fromkeys(matches))
    return list(found)


__all__ = ["IMAGE_EXTENSIONS", "ImageReadError", "decode_image", "find_images", "open_image", "to_rgb"]
