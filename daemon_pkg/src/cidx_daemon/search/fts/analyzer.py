"""Code-aware tokenization, shared by indexing, querying and highlighting.

Why Python and not a tantivy analyzer: splitting ``HTTPResponse`` into
``HTTP`` + ``Response`` needs look-ahead (an upper-case run ends one letter
before a lower-case letter), which tantivy's regex tokenizer (Rust ``regex``,
no look-around) cannot express. So the expansion happens here and tantivy
only splits the result on spaces. One function per concept keeps the index
side and the query side identical by construction.

Vocabulary:

* a *word* is a maximal ``\\w+`` run (identifier, number, keyword);
* its *parts* are the snake/camel/digit pieces: ``parse_http_response`` ->
  ``parse http response``; ``HTTPResponse`` -> ``HTTP Response``;
  ``getURLFor2`` -> ``get URL For 2``; ``urlopen`` -> ``urlopen``;
  ``__init__`` -> ``init``; ``__`` -> (nothing);
* a word is *compound* when its parts are not just itself.

Two token streams per chunk feed the index (see ``index.py``): the *parts
stream* (every word replaced by its parts, so positions stay linear and a
phrase like ``read the file`` or ``http response`` matches consecutive
tokens) and the *compound stream* (only the compound words, whole), which is
what lets ``urlopen`` / ``parse_http_response`` match as one identifier.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

#: A word: what Python calls ``\w`` (letters, digits, underscore; Unicode-aware).
WORD_RE = re.compile(r"\w+")

# Camel/snake/digit pieces over a word's *shape* (see _shape): an upper-case run
# that is followed by Upper+lower gives up its last letter ("HTTPResponse" ->
# "HTTP", "Response"); then Capitalised or lower words; then upper runs; then digits.
# Underscores match nothing, so they separate pieces.
_PART_RE = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


#: Words of a sentence that say nothing about code ("how", "the", "a"): results are not
#: marked or centred where they occur (nearly every line holds one), though full text
#: ranks by them like any word.
FUNCTION_WORDS = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "by", "do", "does", "for", "from", "how", "i", "if", "in",
    "into", "is", "it", "its", "of", "on", "or", "that", "the", "this", "to", "was", "what", "when",
    "where", "which", "with",
))


def _shape(word: str) -> str:
    """Map a non-ASCII word to an ASCII string of the same length and case pattern.

    Lets one ASCII regex split any script: upper/title-case -> ``A``, decimal
    digits and other numerics -> ``0``, connector punctuation -> ``_``, every
    other word character (lower-case or uncased letters) -> ``a``.
    """
    out = []
    for ch in word:
        if ch.isupper() or ch.istitle():
            out.append("A")
        elif ch.isnumeric():
            out.append("0")
        elif ch == "_" or unicodedata.category(ch) == "Pc":
            out.append("_")
        else:
            out.append("a")
    return "".join(out)


@lru_cache(maxsize=1 << 16)
def part_spans(word: str) -> tuple[tuple[int, int], ...]:
    """``(start, end)`` offsets of a word's parts inside the word."""
    shape = word if word.isascii() else _shape(word)
    return tuple(m.span() for m in _PART_RE.finditer(shape))


def parts(word: str) -> tuple[str, ...]:
    """A word's snake/camel/digit parts, original case."""
    return tuple(word[a:b] for a, b in part_spans(word))


def is_compound(word: str) -> bool:
    """True when the word splits into something other than itself."""
    spans = part_spans(word)
    return not (len(spans) == 1 and spans[0] == (0, len(word)))


def words(text: str) -> list[str]:
    return WORD_RE.findall(text)


def code_tokens(text: str) -> list[str]:
    """Every searchable token of ``text``, original case, in reading order.

    Each word, then its parts when it is compound: ``HTTPResponse x`` ->
    ``HTTPResponse HTTP Response x``. This is the reference definition the
    index streams and the query parser are built from (and what the property
    tests pin down).
    """
    out: list[str] = []
    for word in WORD_RE.findall(text):
        out.append(word)
        if is_compound(word):
            out.extend(parts(word))
    return out


class StreamBuilder:
    """Turns chunk texts into the two index streams, fast.

    Identifiers repeat a lot, so each distinct word is split once and cached
    as ready-joined strings; the per-chunk work is then C-level joins and
    dict lookups (``__missing__`` only runs on a cache miss). ASCII chunks
    (nearly all code) find their words with ``bytes.translate`` + ``split``,
    four times faster than ``\\w+`` and identical on ASCII. The words it meets are
    also the vocabulary the fuzzy index is made of (``new_tokens``).
    """

    def __init__(self) -> None:
        self._parts = _PartsCache()

    def streams(self, text: str) -> tuple[str, str]:
        """``(parts_stream, compound_stream)`` in original case, space-separated."""
        if text.isascii():
            found = text.encode("ascii").translate(_ASCII_NON_WORD_TO_SPACE).decode("ascii").split()
        else:
            found = WORD_RE.findall(text)
        parts_stream = " ".join(map(self._parts.__getitem__, found))
        # Every word is in both caches now; non-compound words map to "".
        compound = " ".join(map(self._parts.compound.__getitem__, found))
        return parts_stream, compound

    def new_tokens(self) -> list[str]:
        """The tokens (words and their parts, original case) of the words first met since the
        last call: a worker process sends these along with its streams, so the process that
        builds the index gets the whole vocabulary without splitting a word again."""
        out: list[str] = []
        for word in self._parts.fresh:
            out.append(word)
            joined = self._parts[word]
            if joined != word:
                out.extend(joined.split())
        self._parts.fresh.clear()
        return out


@dataclass
class PreparedStreams:
    """Index streams computed where the chunks were made (the indexer's worker processes):
    ``streams[i]`` belongs to the i-th row added, ``tokens`` is their vocabulary."""

    streams: list[tuple[str, str]] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)


_ASCII_NON_WORD_TO_SPACE = bytes(
    c if chr(c).isalnum() or c == ord("_") else ord(" ") for c in range(128)
) + b" " * 128


class _PartsCache(dict[str, str]):
    """word -> its parts joined by spaces; ``compound``: word -> word if compound else ""."""

    def __init__(self) -> None:
        super().__init__()
        self.compound: dict[str, str] = {}
        self.fresh: list[str] = []  # words added since ``StreamBuilder.new_tokens`` last ran

    def __missing__(self, word: str) -> str:
        joined = " ".join(_PART_RE.findall(word)) if word.isascii() else " ".join(parts(word))
        self[word] = joined
        self.compound[word] = "" if joined == word else word
        self.fresh.append(word)
        return joined


def chunk_lines(text: str) -> list[str]:
    """The chunk's lines as a file would number them (a final newline ends, not starts, a line)."""
    lines = text.split("\n")
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()
    return lines
