"""Small builders shared by the tests."""

import torch

from cskd_hf import CSKDConfig

TINY_IMAGE_SIZE = 64


def tiny_config(architecture: str = "test_resnet", **kwargs) -> CSKDConfig:
    """A config over one of timm's tiny `test_*` architectures, at a 64 px input."""
    return CSKDConfig(architecture=architecture, image_size=TINY_IMAGE_SIZE, **kwargs)


def same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Whether two state dicts hold the same keys and bit-identical tensors."""
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)
