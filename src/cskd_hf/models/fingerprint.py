"""One fingerprint of a model's weights, for every place that must tell two sets of weights apart."""

import hashlib
import json

import torch


def weights_fingerprint(model: torch.nn.Module, include_buffers: bool = False, include_config: bool = False) -> str:
    """A SHA-256 of the model's parameters (their names and bytes, in name order).

    Args:
        include_buffers: also hash the saved buffers (BatchNorm statistics...): what an exported graph depends on.
            Left out where processes compare their weights during training: DDP broadcasts the buffers from process
            0 at each forward pass, so they differ between processes after a step until the next one.
        include_config: also hash the model's config (less its path), as the ONNX graph cache's key does.
    """
    digest = hashlib.sha256()
    if include_config:
        config = {key: value for key, value in model.config.to_dict().items() if key != "_name_or_path"}
        digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    tensors = model.state_dict() if include_buffers else dict(model.named_parameters())
    for name, tensor in sorted(tensors.items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


__all__ = ["weights_fingerprint"]
