"""The contract every embedder meets, local or (later) remote.

The index stores vectors next to the `name` of the embedder that produced
them, so a later query with a different model can be refused instead of
silently returning nonsense: `name` must change whenever the vectors would.
The contract is structural (a Protocol) so a remote provider such as VoyageAI
or Ollama can implement it without inheriting anything from this package.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

#: Called after each batch with the number of texts that batch just finished,
#: so a caller can drive a progress bar without knowing the batching.
ProgressCallback = Callable[[int], None]


class EmbedderError(RuntimeError):
    """An embedder cannot be loaded or used; the message is one line a user can act on."""


@runtime_checkable
class Embedder(Protocol):
    """Turns text into unit-length float32 vectors comparable by dot product."""

    #: Model and runtime, e.g. ``"all-MiniLM-L6-v2/onnx-fp32"``; recorded in the index.
    name: str
    #: Vector dimension.
    dim: int

    def embed_documents(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        progress: ProgressCallback | None = None,
    ) -> np.ndarray:
        """Return a float32 array of shape ``(len(texts), dim)`` with L2-normalised rows,
        in the order of `texts`. An empty `texts` gives shape ``(0, dim)``."""
        ...

    def embed_query(self, text: str) -> np.ndarray:
        """Return the float32 unit vector of shape ``(dim,)`` for one search query."""
        ...
