"""Text embedders for semantic search: names, loading, and the common contract.

`load_embedder` is the one entry point the daemon uses; names map to loaders
so a remote provider can be registered later without touching callers.
"""

from __future__ import annotations

from collections.abc import Callable

from .base import Embedder, EmbedderError, ProgressCallback
from .model_files import FP32_NAME, INT8_NAME, MINILM_PACKAGE, package_dir

__all__ = [
    "DEFAULT_EMBEDDER", "Embedder", "EmbedderError", "ProgressCallback", "available_embedders",
    "load_embedder", "model_name",
]

#: int8 graph quantized at build time: ~2x the fp32 speed, cosine >= 0.98 to it.
DEFAULT_EMBEDDER = "minilm"


def _load_minilm_int8(threads: int | None) -> Embedder:
    from .minilm import load_minilm_int8

    return load_minilm_int8(threads)


def _load_minilm_fp32(threads: int | None) -> Embedder:
    from .minilm import load_minilm_fp32

    return load_minilm_fp32(threads)


#: name -> (loader, the `Embedder.name` it produces, packages whose files it needs). The
#: model name is known without loading so the indexer can tell, before any work, that an
#: index holds another model's vectors.
_REGISTRY: dict[str, tuple[Callable[[int | None], Embedder], str, tuple[str, ...]]] = {
    "minilm": (_load_minilm_int8, INT8_NAME, (MINILM_PACKAGE,)),
    "minilm-fp32": (_load_minilm_fp32, FP32_NAME, (MINILM_PACKAGE,)),
}


def model_name(name: str) -> str | None:
    """The `Embedder.name` that embedder `name` produces (None for an unknown name), cheaply."""
    entry = _REGISTRY.get(name)
    return entry[1] if entry else None


def available_embedders() -> list[str]:
    """Names `load_embedder` can load on this machine (their model packages are installed)."""
    return [
        name for name, (_, _, packages) in _REGISTRY.items()
        if all(package_dir(p) is not None for p in packages)
    ]


def load_embedder(name: str = DEFAULT_EMBEDDER, *, threads: int | None = None) -> Embedder:
    """Load embedder `name` (slow: ~1 s; keep the result for the life of the process).

    `threads` caps onnxruntime's intra-op threads (default: min(2, cores)).
    Raises EmbedderError, whose one-line message says what to install, when
    the name is unknown or its model files are missing.
    """
    entry = _REGISTRY.get(name)
    if entry is None:
        raise EmbedderError(f"unknown embedder {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    loader, expected, _ = entry
    embedder = loader(threads)
    assert embedder.name == expected, (embedder.name, expected)
    return embedder
