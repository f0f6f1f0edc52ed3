"""What verifying a checkpoint costs: writing its manifest (every file's SHA-256, at save time) and checking it (before
`--resume_from_checkpoint` trusts it), for a checkpoint of a given model size.

    python benchmarks/checkpoint_verify.py      # the Swin-Base backbone (86.7M parameters), fp32, with Adam's state

The files are random bytes of the sizes Accelerate writes for such a model: `model.safetensors` (4 bytes a
parameter), `optimizer.bin` (Adam's two moments, 8 bytes a parameter) and an RNG state; the head's few parameters are
left out. The time is the hashing's, which does not depend on the bytes.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

from cskd_hf.training.common import checkpoint_problem, write_manifest

SWIN_BASE_PARAMETERS = 86_743_224  # timm's swin_base_patch4_window7_224 with num_classes=0


def write_checkpoint(folder: Path, parameters: int) -> int:
    """Random files of a fp32 checkpoint's sizes; returns their total size in bytes."""
    sizes = {"model.safetensors": 4 * parameters, "optimizer.bin": 8 * parameters, "random_states_0.pkl": 16_000}
    chunk = os.urandom(1 << 24)
    for name, size in sizes.items():
        with open(folder / name, "wb") as file:
            for start in range(0, size, len(chunk)):
                file.write(chunk[: min(len(chunk), size - start)])
    return sum(sizes.values())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parameters", type=int, default=SWIN_BASE_PARAMETERS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        total = write_checkpoint(Path(folder), args.parameters)
        start = time.perf_counter()
        write_manifest(Path(folder))
        written = time.perf_counter() - start
        start = time.perf_counter()
        assert checkpoint_problem(Path(folder)) is None
        checked = time.perf_counter() - start
    print("| checkpoint | size | write the manifest | verify |\n|---|---|---|---|")
    print(
        f"| {args.parameters / 1e6:.1f}M parameters, fp32 + Adam | {total / 2**30:.2f} GiB | {written:.1f} s | "
        f"{checked:.1f} s |"
    )


if __name__ == "__main__":
    main()
