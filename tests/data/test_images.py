"""`cskd_hf.data.images`: every kind of photo file becomes upright 8-bit RGB or an error naming the file and the
reason; draft decoding of large JPEGs; finding the images of folders, globs and files."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from cskd_hf import CSKDImageProcessor
from cskd_hf.data.images import ImageReadError, find_images, open_image
from cskd_hf.data.samples import sample_photo
from tests.helpers import UNREADABLE, write_awkward_images


@pytest.fixture(scope="module")
def awkward(tmp_path_factory):
    return write_awkward_images(tmp_path_factory.mktemp("awkward"), sample_photo("chelsea"))


def test_every_readable_kind_becomes_upright_8bit_rgb(awkward):
    reference = np.asarray(open_image(awkward["png"]), dtype=np.float64)
    for kind, path in awkward.items():
        if kind in UNREADABLE:
            continue
        image = open_image(path)
        assert image.mode == "RGB", kind
        assert image.size == (451, 300), kind  # the EXIF-rotated file comes back upright
        pixels = np.asarray(image, dtype=np.float64)
        if kind in ("jpeg", "cmyk", "exif_rotated", "palette"):
            assert np.abs(pixels - reference).mean() < 8, kind  # lossy or quantised, but the same picture


def test_sixteen_bit_grey_is_rescaled_not_clipped(awkward):
    gray8 = np.asarray(open_image(awkward["gray"]))[..., 0].astype(int)
    gray16 = np.asarray(open_image(awkward["gray16"]))[..., 0].astype(int)
    assert np.abs(gray16 - gray8).max() <= 1
    assert (gray16 == 255).mean() < 0.01  # PIL's plain convert("L") clips nearly every pixel to 255


def test_alpha_is_composited_on_white(tmp_path):
    transparent = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    transparent.save(tmp_path / "clear.png")
    assert np.asarray(open_image(tmp_path / "clear.png")).min() == 255


@pytest.mark.parametrize("kind,reason", [("truncated", "truncated"), ("empty", "empty"), ("text", "not a recognised")])
def test_unreadable_files_raise_naming_file_and_reason(awkward, kind, reason):
    with pytest.raises(ImageReadError, match=reason) as error:
        open_image(awkward[kind])
    assert str(awkward[kind]) in str(error.value)


def png_claiming_size(path, width: int, height: int):
    """A tiny PNG whose header claims `width` x `height` (a decompression bomb's trick): no memory to build it."""
    Image.new("L", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    header = struct.pack(">II", width, height) + data[24:29]  # IHDR: size, then depth, colour type, methods
    data[16:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    path.write_bytes(bytes(data))
    return path


def test_a_decompression_bomb_is_refused_without_decoding_it(tmp_path):
    bomb = png_claiming_size(tmp_path / "bomb.png", 60_000, 60_000)  # 3.6 gigapixels, 69 bytes
    with pytest.raises(ImageReadError, match="decompression bomb") as error:
        open_image(bomb)
    assert str(bomb) in str(error.value)


def test_extreme_sizes_and_animations_give_rgb(tmp_path):
    Image.new("RGB", (1, 1), (200, 10, 10)).save(tmp_path / "dot.png")
    Image.new("RGB", (30_000, 2), (10, 200, 10)).save(tmp_path / "strip.png")  # a 30,000-pixel side
    frames = [Image.new("RGB", (16, 12), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert open_image(tmp_path / "dot.png").getpixel((0, 0)) == (200, 10, 10)
    assert open_image(tmp_path / "strip.png").size == (30_000, 2)
    animated = open_image(tmp_path / "animated.gif")
    assert (animated.mode, animated.size, animated.getpixel((0, 0))) == ("RGB", (16, 12), (255, 0, 0))  # frame 1


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        open_image(tmp_path / "gone.jpg")


def test_find_images_expands_folders_globs_and_files(tmp_path, awkward):
    folder = next(iter(awkward.values())).parent
    (folder / "notes.txt").write_text("not an image, skipped in folders")
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(nested / "deep.JPG")

    from_folder = find_images([folder])
    assert len(from_folder) == len(awkward) and all(p.suffix == ".jpg" or p.suffix == ".png" for p in from_folder)
    assert find_images([tmp_path / "a"]) == [nested / "deep.JPG"]
    assert find_images([str(folder / "*.png")]) == sorted(p for p in awkward.values() if p.suffix == ".png")
    assert find_images([folder / "notes.txt"]) == [folder / "notes.txt"]  # named explicitly: kept, reported later
    assert find_images([awkward["png"], awkward["png"]]) == [awkward["png"]]
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        find_images([tmp_path / "nothing-here"])
    with pytest.raises(FileNotFoundError, match="matches no image"):
        find_images([str(tmp_path / "*.webp")])


def test_draft_decoding_of_a_large_jpeg_is_smaller_and_nearly_identical_after_resizing(photos):
    processor = CSKDImageProcessor(image_size=224)
    path = photos / "large.jpg"
    drafted, full = open_image(path, draft_size=processor.resize_size), open_image(path)
    assert full.size == (3000, 2000)
    assert min(drafted.size) >= processor.resize_size and drafted.size[0] <= 3000 // 4  # decoded at 1/4 or 1/8
    crop = processor.resize_and_crop()
    difference = (crop(drafted).float() - crop(full).float()).abs().mean().item()
    assert difference < 2.0  # mean absolute difference in 8-bit levels, after the resize to 256 px
    # PNGs and small JPEGs decode fully whatever the draft size.
    assert open_image(photos / "camera.png", draft_size=8).size == open_image(photos / "camera.png").size
