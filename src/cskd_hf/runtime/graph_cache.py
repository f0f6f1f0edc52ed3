"""Finding a model folder's exported graph without torch: in the folder (`cskd export`) or in the graph cache.

The cache key is a hash of the files that define the model: its weights, `config.json` and
`preprocessor_config.json`, so a changed bin layout or processor is never scored with a stale graph. Hashing a large
model on every call would cost seconds, so each file's SHA-256 is itself cached by path, size and modification time.
"""

import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .spec import SPEC_FILE, ScoringSpec

logger = logging.getLogger(__name__)

ONNX_SUBFOLDER = "onnx"
ONNX_FILE = "model.onnx"
QUANTIZED_ONNX_FILE = "model_quantized.onnx"
DEFINING_JSON = ("config.json", "preprocessor_config.json")
WEIGHT_SUFFIXES = (".safetensors", ".bin")


@dataclass(frozen=True)
class ExportedGraph:
    """A graph to run and the spec to run it with."""

    path: Path
    spec: ScoringSpec


def default_graph_cache() -> Path:
    """Where exported graphs are cached: `$CSKD_ONNX_CACHE`, else `cskd_hf/onnx` in the Hugging Face home."""
    from huggingface_hub import constants

    return Path(os.environ.get("CSKD_ONNX_CACHE") or Path(constants.HF_HOME) / "cskd_hf" / "onnx")


def onnx_path(model_dir: str | os.PathLike, quantized: bool = False) -> Path:
    """Where `cskd export` writes (and `cskd score` looks for) the graph of a model folder."""
    return Path(model_dir) / ONNX_SUBFOLDER / (QUANTIZED_ONNX_FILE if quantized else ONNX_FILE)


def defining_files(model_dir: str | os.PathLike) -> list[Path]:
    """The files whose contents define a model folder's scores: weights (and their index), config, processor."""
    model_dir = Path(model_dir)
    files = [model_dir / name for name in DEFINING_JSON]
    missing = [path.name for path in files if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"{model_dir}: not a saved model folder (no {', '.join(missing)})")
    weights = sorted(
        path
        for path in model_dir.iterdir()
        if path.is_file() and (path.suffix in WEIGHT_SUFFIXES or path.name.endswith(".index.json"))
    )
    if not weights:
        raise FileNotFoundError(
            f"{model_dir}: no file named model.safetensors or other weights (*.safetensors, *.bin)"
        )
    return files + weights


# A record written less than this after its file's last change is not trusted: a same-size rewrite within the
# file system's mtime granularity (seconds on some) would keep the mtime (git's "racy clean" rule).
RACY_SECONDS = 2


def file_sha256(path: Path, cache_dir: Path) -> str:
    """The SHA-256 of a file, read from `cache_dir/file-hashes/` while its path, size, inode and times stay the
    same."""
    stat = path.stat()
    resolved = str(path.resolve())
    record = cache_dir / "file-hashes" / (hashlib.sha256(resolved.encode()).hexdigest()[:32] + ".json")
    identity = {
        "path": resolved, "size": stat.st_size, "inode": stat.st_ino, "mtime_ns": stat.st_mtime_ns,
        "ctime_ns": stat.st_ctime_ns,
    }  # fmt: skip
    try:
        cached = json.loads(record.read_text())
        settled = cached["hashed_at_ns"] - stat.st_mtime_ns > RACY_SECONDS * 1_000_000_000
        if settled and {key: cached.get(key) for key in identity} == identity:
            return cached["sha256"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # no record, or a damaged one: hash again
    hashed_at = time.time_ns()
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    try:
        write_atomically(record, json.dumps({**identity, "hashed_at_ns": hashed_at, "sha256": digest.hexdigest()}))
    except OSError as error:  # a read-only cache still scores, it hashes every time
        logger.debug("could not record the hash of %s: %s", path, error)
    return digest.hexdigest()


def source_hashes(model_dir: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """`{file name: SHA-256}` of a model folder's defining files."""
    cache_dir = Path(cache_dir or default_graph_cache())
    return {path.name: file_sha256(path, cache_dir) for path in defining_files(model_dir)}


def graph_cache_key(hashes: dict[str, str]) -> str:
    """The cache folder's name for a model with these defining files."""
    return "files-" + hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()[:40]


def find_graph(
    model_dir: str | os.PathLike,
    quantized: bool = False,
    cache_dir: str | os.PathLike | None = None,
    trust_unverified: bool = False,
) -> ExportedGraph | None:
    """The exported graph of a model folder, or None: the folder's own (`cskd export`) first, then the cache's.

    A folder graph whose spec records other source files than the folder holds now (the model was saved again
    after exporting) is stale: skipped with a warning. So is, unless `trust_unverified`, a folder graph without a
    spec (exported by an older cskd-hf), which nothing ties to the weights; trusted, it runs with the spec of the
    folder's JSON files. A folder of a graph and its spec only (no weights to check them against, as
    `cskd export --web` writes, or `onnx/` alone) is taken as it is.
    """
    model_dir = Path(model_dir)
    own = onnx_path(model_dir, quantized)
    for graph_only in (model_dir, own.parent):
        graph_file = graph_only / own.name
        if graph_file.is_file() and (graph_only / SPEC_FILE).is_file() and not (model_dir / "config.json").exists():
            return ExportedGraph(graph_file, ScoringSpec.load(graph_only / SPEC_FILE))
    cache_dir = Path(cache_dir or default_graph_cache())
    hashes = source_hashes(model_dir, cache_dir)
    if own.is_file():
        spec_path = own.parent / SPEC_FILE
        if not spec_path.is_file():
            if trust_unverified:
                return ExportedGraph(own, ScoringSpec.from_model_folder(model_dir))
            logger.warning(f"{own} has no {SPEC_FILE} to say which weights it was exported from: not used; run "
                           "`cskd export` again (or score with --backend onnxruntime to use it as it is)")  # fmt: skip
        else:
            spec = ScoringSpec.load(spec_path)
            if spec.source_files == hashes:
                return ExportedGraph(own, spec)
            logger.warning(f"{own} was exported from other weights or settings than the folder holds now: not used")
    if quantized:
        return None  # the cache holds float graphs only
    cached = cache_dir / graph_cache_key(hashes)
    if (cached / ONNX_FILE).is_file() and (cached / SPEC_FILE).is_file():
        return ExportedGraph(cached / ONNX_FILE, ScoringSpec.load(cached / SPEC_FILE))
    return None


def write_atomically(path: Path, text: str | bytes) -> None:
    """Write under a temporary name and rename, so that concurrent writers each leave a whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, partial = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(text.encode() if isinstance(text, str) else text)
        os.chmod(partial, 0o644)  # mkstemp's 0600 would hide a shared cache's files from other users
        os.replace(partial, path)
    finally:
        Path(partial).unlink(missing_ok=True)


__all__ = [
    "ExportedGraph",
    "ONNX_FILE",
    "QUANTIZED_ONNX_FILE",
    "default_graph_cache",
    "defining_files",
    "file_sha256",
    "find_graph",
    "graph_cache_key",
    "onnx_path",
    "source_hashes",
]
