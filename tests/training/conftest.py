"""The trainer tests' toy world, the teachers they share and the 2-process Accelerate config."""

import json

import pytest
import torch

from tests.helpers import write_tiny_clip
from tests.training.helpers import QUICK
from tests.training.toy import write_toy_labeled, write_toy_unlabeled


@pytest.fixture(scope="session")
def toy_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    unlabeled = write_toy_unlabeled(root / "unlabeled", count=32)
    (unlabeled / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n but then nothing")
    return {
        "labeled": write_toy_labeled(root / "labeled"),
        "unlabeled": unlabeled,
        "clip": write_tiny_clip(root / "clip"),
    }


@pytest.fixture(scope="session")
def toy_teacher(toy_world, tmp_path_factory):
    """A scoring model fine-tuned on the toy data, in process: the teacher of the SKD tests."""
    from cskd_hf.training.supervised import main

    out = tmp_path_factory.mktemp("teacher")
    main(
        [
            "--dataset",
            str(toy_world["labeled"]),
            "--output_dir",
            str(out),
            "--num_epochs",
            "3",
            "--batch_size",
            "8",
            "--num_workers",
            "0",
            "--head_dropout",
            "0.1",
            *QUICK,
        ]
    )
    return out


@pytest.fixture(scope="module")
def classifier_teacher(tmp_path_factory):
    """A timm classifier saved as a local checkpoint: the `timm:ARCH@FILE` teacher of multi-teacher CFA."""
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("classifier") / "test_vit.safetensors"
    save_file(timm.create_model("test_vit", num_classes=10).state_dict(), str(path))
    return f"timm:test_vit@{path}"


@pytest.fixture(scope="session")
def two_process_config(tmp_path_factory):
    """An Accelerate config for 2 processes on this CPU-only machine.

    `accelerate launch --cpu --num_processes 2` starts a single process unless MPI is installed, so the test launches
    through torchrun (`MULTI_GPU`) with `ACCELERATE_USE_CPU=1`, which gives 2 processes talking over gloo.
    """
    path = tmp_path_factory.mktemp("accelerate") / "two_cpu_processes.yaml"
    config = {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": "MULTI_GPU",
        "num_machines": 1,
        "num_processes": 2,
        "gpu_ids": "all",
        "machine_rank": 0,
        "mixed_precision": "no",
        "rdzv_backend": "static",
        "same_network": True,
        "use_cpu": False,
    }
    path.write_text(json.dumps(config))  # YAML is a superset of JSON
    return path
