"""Full-text search over chunks: code-aware tokens, BM25, phrases, fuzzy, regex.

``build_fts_index`` writes one generation's index; ``FtsIndex.open`` reads
it (milliseconds) and ``FtsIndex.search`` serves any number of threads.
"""

from .analyzer import code_tokens
from .highlight import LineMatch, Snippet
from .index import FORMAT_VERSION, FtsHit, FtsIndex, FtsQueryError, build_fts_index

__all__ = [
    "FORMAT_VERSION",
    "FtsHit",
    "FtsIndex",
    "FtsQueryError",
    "LineMatch",
    "Snippet",
    "build_fts_index",
    "code_tokens",
]
