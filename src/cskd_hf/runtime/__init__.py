"""Torch-free scoring: an exported graph (`cskd export`), its spec, numpy, PIL and ONNX Runtime.

Nothing here imports torch, timm or transformers (an import-linter contract in setup.cfg keeps it so), so
`pip install cskd-hf` without the `[torch]` extra scores with a model folder that holds its graph.
"""

from .graph_cache import ExportedGraph, default_graph_cache, find_graph, onnx_path
from .scoring import GraphNotFoundError, PortableScorer, ScoreResult
from .spec import ScoringSpec

__all__ = [
    "ExportedGraph",
    "GraphNotFoundError",
    "PortableScorer",
    "ScoreResult",
    "ScoringSpec",
    "default_graph_cache",
    "find_graph",
    "onnx_path",
]
