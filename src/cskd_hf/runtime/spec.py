"""The scoring spec: everything between an image file and the exported graph's input, as one small JSON file.

`cskd export` writes it next to the graph (`onnx/spec.json`). It holds the image processor's fields (resize mode,
size, interpolation and what is resized, the centre crop, mean and std, draft decoding) and the config's score bins
and head, read from the model folder's `preprocessor_config.json` and `config.json`, the same fields
`CSKDImageProcessor` follows. The torch-free runtime (`cskd_hf.runtime`) and the browser page (`cskd export --web`)
implement it; `tests/runtime/test_spec.py` holds the runtime to the processor.

Resizing follows PIL's convolution resampler (antialiased: the kernel widens with the downscale factor), which
torchvision's antialiased resize reproduces: `"pil"` and `"float"` inputs match the processor to float precision,
`"uint8"` to within one 8-bit level (PIL and torchvision round their uint8 passes differently).
"""

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

SPEC_FILE = "spec.json"
SPEC_FORMAT = "cskd-scoring-spec"
SPEC_VERSION = 1

PIL_INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}


@dataclasses.dataclass(frozen=True)
class ScoringSpec:
    """How to turn an 8-bit RGB image into the graph's `pixel_values` and its outputs into a score.

    Attributes:
        image_size: side of the square model input (the centre crop).
        resize_size: the side of the resized square (`resize_mode="square"`) or its shorter side (`"shortest_edge"`).
        resize_mode: `"square"` (aspect ratio not kept, the paper's) or `"shortest_edge"` (aspect kept).
        interpolation: `"bicubic"`, `"bilinear"` or `"nearest"`.
        resize_input: what is resized: `"uint8"` or `"pil"` pixels (rounded to 8 bits) or `"float"` ones in [0, 1]
            (not rounded, not clipped).
        image_mean: per-channel mean subtracted from pixels in [0, 1].
        image_std: per-channel std they are divided by.
        draft_decoding: large JPEGs may decode at 1/2-1/8 size while both sides stay at least `resize_size`.
        bin_scores: the score of each bin of `probabilities`.
        score_head: `"distribution"` (a softmax over the bins) or `"scalar"` (one score, spread over the bins).
        source_files: SHA-256 of the model folder's files the graph was exported from, by name.
    """

    image_size: int
    resize_size: int
    resize_mode: str
    interpolation: str
    resize_input: str
    image_mean: tuple[float, ...]
    image_std: tuple[float, ...]
    draft_decoding: bool
    bin_scores: tuple[float, ...]
    score_head: str
    input_name: str = "pixel_values"
    output_names: tuple[str, ...] = ("probabilities", "mean_score", "std_score")
    source_files: dict[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.resize_mode not in ("square", "shortest_edge"):
            raise ValueError(f"spec: resize_mode must be 'square' or 'shortest_edge', got {self.resize_mode!r}")
        if self.resize_input not in ("uint8", "float", "pil"):
            raise ValueError(f"spec: resize_input must be 'uint8', 'float' or 'pil', got {self.resize_input!r}")
        if self.interpolation not in PIL_INTERPOLATIONS:
            raise ValueError(f"spec: interpolation must be one of {sorted(PIL_INTERPOLATIONS)}")
        if self.interpolation == "nearest" and self.resize_input != "pil":
            # torchvision samples tensors at floor(i * in / out), PIL at the pixels' centres: other pixels.
            raise ValueError(
                "spec: nearest interpolation of uint8 or float pixels (torchvision's) is not PIL's, which the spec "
                "follows; use resize_input='pil' or another interpolation"
            )
        if len(self.image_mean) != 3 or len(self.image_std) != 3:
            raise ValueError("spec: image_mean and image_std need one value per RGB channel")
        if self.score_head not in ("distribution", "scalar"):
            raise ValueError(f"spec: score_head must be 'distribution' or 'scalar', got {self.score_head!r}")
        if not 0 < self.image_size <= self.resize_size:
            raise ValueError(f"spec: need 0 < image_size ({self.image_size}) <= resize_size ({self.resize_size})")

    @classmethod
    def from_dicts(cls, config: dict, processor: dict, source_files: dict[str, str] | None = None) -> "ScoringSpec":
        """The spec of a model from its `config.json` and `preprocessor_config.json` contents."""
        try:
            return cls(
                image_size=int(processor["image_size"]),
                resize_size=int(processor["resize_size"]),
                resize_mode=processor.get("resize_mode", "square"),
                interpolation=processor.get("interpolation", "bicubic"),
                resize_input=processor.get("resize_input", "uint8"),
                image_mean=tuple(float(value) for value in processor["image_mean"]),
                image_std=tuple(float(value) for value in processor["image_std"]),
                draft_decoding=bool(processor.get("draft_decoding", True)),
                bin_scores=tuple(float(value) for value in config["bin_scores"]),
                score_head=config.get("score_head", "distribution"),
                source_files=dict(source_files or {}),
            )
        except KeyError as error:
            raise ValueError(f"not a CSKD scoring model's config: no {error.args[0]!r} field") from error

    @classmethod
    def from_model_folder(cls, model_dir: str | os.PathLike) -> "ScoringSpec":
        """The spec of a saved model folder, from its two JSON files (no torch needed)."""
        model_dir = Path(model_dir)
        return cls.from_dicts(read_json(model_dir / "config.json"), read_json(model_dir / "preprocessor_config.json"))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ScoringSpec":
        fields = read_json(path)
        if fields.pop("format", None) != SPEC_FORMAT:
            raise ValueError(f'{path}: not a CSKD scoring spec (no "format": "{SPEC_FORMAT}")')
        version = fields.pop("version", None)
        if version != SPEC_VERSION:
            raise ValueError(f"{path}: spec version {version}; this cskd-hf reads version {SPEC_VERSION}")
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ValueError(f"{path}: unknown spec fields {unknown}")
        tuples = {name: tuple(value) for name, value in fields.items() if isinstance(value, list)}
        try:
            return cls(**{**fields, **tuples})
        except TypeError as error:
            raise ValueError(f"{path}: {error}") from error

    def to_json(self) -> str:
        fields = {"format": SPEC_FORMAT, "version": SPEC_VERSION, **dataclasses.asdict(self)}
        return json.dumps(fields, indent=2) + "\n"

    def save(self, path: str | os.PathLike) -> Path:
        from .graph_cache import write_atomically

        write_atomically(Path(path), self.to_json())
        return Path(path)

    def with_sources(self, source_files: dict[str, str]) -> "ScoringSpec":
        """This spec, recording the hashes of the model folder's files it was made from."""
        return dataclasses.replace(self, source_files=dict(source_files))

    def draft_size(self, draft: bool = True) -> int | None:
        """The smallest size a JPEG may decode at (`open_image`'s `draft_size`), or None for a full decode."""
        return self.resize_size if draft and self.draft_decoding else None

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) after the resize; a shorter edge keeps the aspect ratio with the longer side truncated,
        as torchvision computes it."""
        if self.resize_mode == "square":
            return self.resize_size, self.resize_size
        if width <= height:
            return self.resize_size, int(self.resize_size * height / width)
        return int(self.resize_size * width / height), self.resize_size

    def crop_box(self, width: int, height: int) -> tuple[int, int]:
        """The centre crop's (left, top) in the resized image: torchvision's `int(round(...))`, halves to even."""
        return int(round((width - self.image_size) / 2.0)), int(round((height - self.image_size) / 2.0))

    def pixel_values(self, image: Image.Image) -> np.ndarray:
        """An 8-bit RGB PIL image as the graph's input: float32 `(3, image_size, image_size)`."""
        if image.mode != "RGB":
            raise ValueError(f"the spec takes 8-bit RGB images, got mode {image.mode!r} (see cskd_hf.data.images)")
        size = self.resized_size(*image.size)
        resample = PIL_INTERPOLATIONS[self.interpolation]
        left, top = self.crop_box(*size)
        mean, std = np.asarray(self.image_mean, np.float32), np.asarray(self.image_std, np.float32)
        if self.resize_input == "float":
            channels = np.asarray(image, dtype=np.float32) / 255.0
            # PIL's "F" mode resamples one float channel without rounding or clipping, as torchvision does floats.
            resized = np.stack(
                [np.asarray(Image.fromarray(channels[..., c]).resize(size, resample)) for c in range(3)],
                axis=-1,
            )
            crop = resized[top : top + self.image_size, left : left + self.image_size]
            return np.ascontiguousarray(((crop - mean) / std).transpose(2, 0, 1), dtype=np.float32)
        box = (left, top, left + self.image_size, top + self.image_size)
        crop = np.asarray(image.resize(size, resample).crop(box), dtype=np.float32).transpose(2, 0, 1)
        # (x / 255 - mean) / std as one multiply-add per pixel, on the crop only
        scale, shift = 1.0 / (255.0 * std), mean / std
        return np.ascontiguousarray(crop * scale[:, None, None] - shift[:, None, None], dtype=np.float32)


def read_json(path: str | os.PathLike) -> dict:
    """A JSON object from a file; a missing or malformed file is an error naming it."""
    try:
        fields = json.loads(Path(path).read_text())
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{path}: no such file") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(fields, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return fields


__all__ = ["SPEC_FILE", "ScoringSpec", "read_json"]
