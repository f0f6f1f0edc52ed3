"""Real photographs shipped by scikit-image, written out as ordinary image files for demos, tests and benchmarks.

Run `python -m cskd_hf.data.samples DIR` to write them. Needs scikit-image (the `dev` extra).
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

# (scikit-image loader, file name): photographs and a few grey-scale scenes, as JPEG and PNG.
SAMPLE_PHOTOS = (
    ("astronaut", "astronaut.jpg"),
    ("chelsea", "chelsea.jpg"),
    ("coffee", "coffee.jpg"),
    ("rocket", "rocket.jpg"),
    ("hubble_deep_field", "hubble_deep_field.jpg"),
    ("immunohistochemistry", "immunohistochemistry.png"),
    ("colorwheel", "colorwheel.png"),
    ("camera", "camera.png"),
    ("coins", "coins.jpg"),
    ("moon", "moon.png"),
)


def sample_photo(name: str) -> np.ndarray:
    """One of scikit-image's bundled photographs as a uint8 array (HxW or HxWx3)."""
    from skimage import data

    return getattr(data, name)()


def write_sample_images(out_dir: str | Path) -> list[Path]:
    """Write the sample photographs into `out_dir` and return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, file_name in SAMPLE_PHOTOS:
        path = out_dir / file_name
        Image.fromarray(sample_photo(name)).save(path, quality=92)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", help="folder to write the images into")
    paths = write_sample_images(parser.parse_args().out_dir)
    print(f"wrote {len(paths)} sample photos to {paths[0].parent}")


if __name__ == "__main__":
    main()
