"""`cskd export --web`: a static site that scores photos in the browser with onnxruntime-web, nothing uploaded.

The site is the page (`index.html`, `app.js`, from `cskd_hf/web/`), the graph (`model.onnx`), its spec
(`spec.json`) and onnxruntime-web's WASM build (`ort.wasm.min.js` and its `.mjs`/`.wasm`), which `make install`
fetches from the npm registry into `cskd_hf/web/vendor/`. Nothing is fetched when the page runs: it works from any
static file server, offline, and as a Hugging Face Space with `sdk: static` (the `README.md` written beside it).
"""

import json
import shutil
from importlib import resources
from pathlib import Path

from .graph_cache import ExportedGraph
from .spec import SPEC_FILE

PAGE_FILES = ("index.html", "app.js")
RUNTIME_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
LICENCE_FILE = "onnxruntime-web-package.json"

SPACE_README = """---
title: {title}
emoji: 📷
colorFrom: indigo
colorTo: gray
sdk: static
app_file: index.html
pinned: false
---

Aesthetic scores of your photos, computed in your browser with onnxruntime-web: nothing is uploaded.
Written by `cskd export --web` (cskd-hf) from {model}.
"""


def web_assets() -> Path:
    """The folder of the page and of onnxruntime-web (package data)."""
    return Path(str(resources.files("cskd_hf") / "web"))


def check_web_runtime() -> None:
    """Raises FileNotFoundError, naming what is missing, when onnxruntime-web is not installed with cskd-hf."""
    vendor = web_assets() / "vendor"
    missing = [name for name in RUNTIME_FILES if not (vendor / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{vendor}: onnxruntime-web is not installed ({', '.join(missing)} missing); `make web-vendor` fetches it "
            "from the npm registry"
        )


def write_web_page(
    graph: ExportedGraph, out_dir: str | Path, title: str = "Aesthetic scores", model: str = ""
) -> Path:
    """Write the static site for `graph` (a graph for any batch size) into `out_dir`; returns `out_dir/index.html`.

    Raises:
        FileNotFoundError: onnxruntime-web is not installed with cskd-hf (`make web-vendor` fetches it).
    """
    check_web_runtime()
    assets = web_assets()
    vendor = assets / "vendor"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in PAGE_FILES:
        shutil.copyfile(assets / name, out_dir / name)
    for name in (*RUNTIME_FILES, LICENCE_FILE):
        if (vendor / name).is_file():
            shutil.copyfile(vendor / name, out_dir / name)
    shutil.copyfile(graph.path, out_dir / "model.onnx")
    graph.spec.save(out_dir / SPEC_FILE)
    # JSON strings are YAML strings: a title with ": " stays one value of the front matter.
    (out_dir / "README.md").write_text(SPACE_README.format(title=json.dumps(title), model=model or "a CSKD model"))
    return out_dir / "index.html"


__all__ = ["PAGE_FILES", "RUNTIME_FILES", "check_web_runtime", "web_assets", "write_web_page"]
