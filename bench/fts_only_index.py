"""Index a project for full-text search only: every vector is zero, nothing is embedded.

    VENV/bin/python bench/fts_only_index.py [--clear]      (cwd: the project)

Embedding runs at ~15-20 chunks/s on two cores, so a 100 MB corpus (~150k
chunks) would take hours to index for real, and `cidx-daemon index` has no
switch to skip it. The large-corpus benchmark measures full-text search only,
which never reads the vectors, so this helper runs the real indexer
(`index_project`: same walk, chunking, chunk store and FTS index) with an
embedder that returns zeros. Semantic results on such an index are
meaningless, and the benchmark never asks for them. Prints the indexer's
statistics as JSON, like ``cidx-daemon index --json``.

Runs inside the benchmark venv (it needs the daemon package and numpy).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence

import numpy as np

from cidx_daemon.index.indexer import index_project
from cidx_shared import config as cfgmod

DIM = 384  # MiniLM's, so the index has the shape a real one has


class ZeroEmbedder:
    """Meets the Embedder contract's shapes; the name marks the index as not semantic."""

    name = "bench-zero-vectors/fts-only"
    dim = DIM

    def embed_documents(self, texts: Sequence[str], batch_size: int = 32,
                        progress: Callable[[int], None] | None = None) -> np.ndarray:
        if progress is not None:
            progress(len(texts))
        return np.zeros((len(texts), DIM), dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return np.zeros(DIM, dtype=np.float32)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clear", action="store_true", help="rebuild from scratch")
    args = parser.parse_args()
    config_path = cfgmod.find_config()
    if config_path is None:
        parser.error("no .code-indexer/config.json at or above the current directory")
    stats = index_project(config_path, clear=args.clear, embedder_factory=lambda _name: ZeroEmbedder())
    print(json.dumps(stats.to_json(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
