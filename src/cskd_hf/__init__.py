"""cskd-hf: image aesthetics assessment with CLIP-based semi-supervised knowledge distillation, the Hugging Face way.

`import cskd_hf` is light: it loads neither torch nor transformers. The names below load on first use; using a model
or pipeline name (`from cskd_hf import CSKDConfig`) also registers the CSKD models with the transformers Auto classes
and the `image-aesthetics` pipeline. Code that uses only transformers' names (`AutoModel`, `pipeline(...)`) calls
`cskd_hf.register()` for that.
"""

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .inference.pipeline import ImageAestheticsPipeline
    from .models.cskd import (
        CSKDConfig,
        CSKDForAestheticScoring,
        CSKDForFeatureAlignment,
        CSKDImageProcessor,
        CSKDModel,
    )
    from .zoo import list_models

# The modules whose import registers the models (Auto classes) and the `image-aesthetics` pipeline.
_REGISTERING_MODULES = (".models.cskd", ".inference.pipeline")

# Each lazy name and the module defining it; the modules in _REGISTERING_MODULES are all imported for their names.
_LAZY_NAMES = {
    "CSKDConfig": ".models.cskd",
    "CSKDForAestheticScoring": ".models.cskd",
    "CSKDForFeatureAlignment": ".models.cskd",
    "CSKDImageProcessor": ".models.cskd",
    "CSKDModel": ".models.cskd",
    "ImageAestheticsPipeline": ".inference.pipeline",
    "list_models": ".zoo",
}


def register() -> None:
    """Register the CSKD models with the transformers Auto classes (`AutoConfig`, `AutoModel`,
    `AutoModelForImageClassification`, `AutoImageProcessor`) and the `image-aesthetics` pipeline. Idempotent."""
    for module in _REGISTERING_MODULES:
        importlib.import_module(module, __name__)


def __getattr__(name: str) -> Any:
    module = _LAZY_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if module in _REGISTERING_MODULES:
        register()
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "CSKDConfig",
    "CSKDForAestheticScoring",
    "CSKDForFeatureAlignment",
    "CSKDImageProcessor",
    "CSKDModel",
    "ImageAestheticsPipeline",
    "__version__",
    "list_models",
    "register",
]
