"""Training from `cskd data shard` output: the trainers read the folders through their usual options, and lossless
shards of the model's resize train exactly the model the source trains."""

import json

from cskd_hf import CSKDConfig, CSKDImageProcessor
from cskd_hf.data.shard import shard
from cskd_hf.training import supervised
from cskd_hf.training.arguments import parse_arguments
from tests.training.helpers import QUICK, last_checkpoint


def finetune(dataset, out) -> dict:
    args = ["--dataset", str(dataset), "--output_dir", str(out), "--num_epochs", "1", "--batch_size", "8",
            "--num_workers", "0", "--head_dropout", "0.1", "--seed", "3", *QUICK]  # fmt: skip
    supervised.train(parse_arguments(supervised.FinetuneArguments, args))
    return json.loads((last_checkpoint(out) / "trainer_state_rank0.json").read_text())


def test_fine_tuning_on_lossless_shards_gives_the_sources_weights(toy_world, tmp_path):
    # The resize of the model the trainer builds from QUICK's architecture and image size.
    processor = CSKDImageProcessor.from_model_config(CSKDConfig(architecture="test_resnet", image_size=32))
    shards = tmp_path / "shards"
    plan = shard(str(toy_world["labeled"]), shards, processor, image_format="png", num_workers=1, progress=False)
    assert plan.labeled and sum(info["skipped"] for info in plan.splits.values()) == 0

    from_source, from_shards = finetune(toy_world["labeled"], tmp_path / "a"), finetune(shards, tmp_path / "b")
    assert from_shards["weights_fingerprint"] == from_source["weights_fingerprint"]
    assert from_shards["history"] == from_source["history"]
