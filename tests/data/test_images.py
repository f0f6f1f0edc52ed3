import numpy as np
import pytest
from PIL import Image

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
