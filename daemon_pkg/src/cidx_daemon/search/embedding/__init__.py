"""Text embedders for semantic search: names, loading, and the common contract.

`load_embedder` is the one entry point the daemon uses; names map to loaders
so a remote provider can be registered later without touching callers.
"""

from __future__ import annotations

from collections.abc import Callable

from .base import Embedder, EmbedderError, ProgressCallback
from .model_files import INT8_PACKAGE, MINILM_PACKAGE, package_dir

__all__ = ["Embedder", "EmbedderError", "ProgressCallback", "available_embedders", "load_embedder"]

DEFAULT_EMBEDDER = "minilm"


def _load_minilm(threads: int | None) -> Embedder:
    from .minilm import load_minilm_fp32

    return load_minilm_fp32(threads)


def _load_minilm_int8(threads: int | None) -> Embedder:
    from .minilm import load_minilm_int8

    return load_minilm_int8(threads)


#: name -> (loader, packages whose files it needs)
_REGISTRY: dict[str, tuple[Callable[[int | None], Embedder], tuple[str, ...]]] = {
    "minilm": (_load_minilm, (MINILM_PACKAGE,)),
    "minilm-int8": (_load_minilm_int8, (MINILM_PACKAGE, INT8_PACKAGE)),
}


def available_embedders() -> list[str]:
    """Names `load_embedder` can load on this machine (their model packages are installed)."""
    return [
        name for name, (_, packages) in _REGISTRY.items() if all(package_dir(p) is not None for p in packages)
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
    loader, _ = entry
    return loader(threads)
