"""User query text -> clauses -> term alternatives -> one tantivy query.

Why a parser of our own instead of ``Index.parse_query``: tantivy's syntax
(``+``, ``-``, ``:``, ``*``, ``AND``...) collides with code (``a->b``,
``std::vector``, ``**kwargs``) and its tokenizer would not split
identifiers the way the index did. Here the only syntax is double quotes,
so no query can fail to parse and every term goes through the same
``analyzer`` functions the index was built with.

Rules:

* a whitespace-separated piece holding one word (``urlopen``,
  ``HTTPResponse``, ``foo()``) is a *word clause*: the whole word as one
  term, OR its parts as a phrase (so ``HTTPResponse`` also finds
  ``http_response``);
* a piece holding several words (``os.path.join``, ``a->b``) or a
  ``"quoted text"`` is a *phrase clause*: the parts of all its words,
  consecutive;
* clauses are OR-ed; BM25 ranks chunks matching more of them first.

Fuzzy search replaces each term by the alternatives the vocabulary index
finds within the edit distance (``Expander``), so fuzzy hits keep real
BM25 scores instead of tantivy's constant fuzzy score.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import tantivy

from . import analyzer

_QUOTED_RE = re.compile(r'"([^"]*)(?:"|$)')

#: A set of acceptable terms at one spot, each with its boost (1.0 = exact).
Alternatives = dict[str, float]
#: term -> alternatives (fuzzy expansion); identity when not fuzzy.
Expander = Callable[[str], Alternatives]


@dataclass(frozen=True)
class Clause:
    """One OR-ed unit of the query, original case."""

    whole: str | None  # the word as a single term (word clauses only)
    seq: tuple[str, ...]  # its parts (or all words' parts) as a phrase


@dataclass(frozen=True)
class PlannedClause:
    """A clause after case folding and fuzzy expansion: what is actually searched."""

    whole: Alternatives
    seq: tuple[Alternatives, ...]


@dataclass(frozen=True)
class Fields:
    """Names of the two fields of one case mode (see index.py)."""

    parts: str
    compound: str


def parse_query(text: str) -> list[Clause]:
    """Split a user query into clauses; punctuation-only text gives none."""
    clauses: list[Clause] = []
    rest: list[str] = []
    pos = 0
    for m in _QUOTED_RE.finditer(text):
        rest.append(text[pos:m.start()])
        pos = m.end()
        clause = _clause(analyzer.words(m.group(1)))
        if clause is not None:
            clauses.append(clause)
    rest.append(text[pos:])
    for piece in " ".join(rest).split():
        clause = _clause(analyzer.words(piece))
        if clause is not None:
            clauses.append(clause)
    return clauses


def _clause(found: Sequence[str]) -> Clause | None:
    seq = tuple(p for w in found for p in analyzer.parts(w))
    if len(found) == 1:
        return Clause(whole=found[0], seq=seq)
    return Clause(whole=None, seq=seq) if seq else None


def plan(clauses: Sequence[Clause], *, case_sensitive: bool, expand: Expander | None) -> list[PlannedClause]:
    """Fold case and expand terms; drop clauses that can no longer match anything."""
    memo: dict[str, Alternatives] = {}

    def alternatives(term: str) -> Alternatives:
        if not case_sensitive:
            term = term.lower()
        if term not in memo:
            memo[term] = expand(term) if expand is not None else {term: 1.0}
        return memo[term]

    out: list[PlannedClause] = []
    for clause in clauses:
        whole = alternatives(clause.whole) if clause.whole is not None else {}
        seq = tuple(alternatives(p) for p in clause.seq)
        if not all(seq):  # one position with no alternative: the phrase cannot match
            seq = ()
        if whole or seq:
            out.append(PlannedClause(whole=whole, seq=seq))
    return out


#: (field, term) -> the term's BM25 idf in that field, or None when absent.
Idf = Callable[[str, str], "float | None"]


def to_tantivy(planned: Sequence[PlannedClause], schema: tantivy.Schema, fields: Fields,
               idf: Idf | None = None) -> tantivy.Query:
    """One disjunction over all clauses (the caller checks ``planned`` is not empty).

    ``idf`` (needed only for fuzzy alternatives) blends the alternatives of a
    term, as Elasticsearch does: each is boosted to score with the idf of
    the most frequent one. Otherwise a rare typo-neighbour (``slf``) would
    outrank the common word the user meant (``self``) on idf alone; blended,
    alternatives differ only by term frequency and their distance boost.
    """
    return _any([_clause_query(c, schema, fields, idf) for c in planned])


def _clause_query(clause: PlannedClause, schema: tantivy.Schema, fields: Fields,
                  idf: Idf | None) -> tantivy.Query:
    # (field, term) -> boost; a simple word is both "whole" and a one-part
    # sequence, and must not be counted twice.
    terms: dict[tuple[str, str], float] = {}

    def add(alts: Alternatives, field: str) -> None:
        for term, boost in _blended(alts, field, idf).items():
            terms[(field, term)] = max(boost, terms.get((field, term), 0.0))

    for field in (fields.parts, fields.compound):
        add(clause.whole, field)
    subqueries: list[tantivy.Query] = []
    if len(clause.seq) == 1:
        add(clause.seq[0], fields.parts)
    elif clause.seq:
        subqueries.append(_phrase(clause.seq, schema, fields.parts))
    for (field, term), boost in terms.items():
        q = tantivy.Query.term_query(schema, field, term, index_option="freq")
        subqueries.append(q if boost == 1.0 else tantivy.Query.boost_query(q, boost))
    return _any(subqueries)


def _blended(alts: Alternatives, field: str, idf: Idf | None) -> Alternatives:
    if idf is None or len(alts) <= 1:
        return alts
    known = {t: v for t in alts if (v := idf(field, t)) is not None}
    if not known:
        return {}
    ref = min(known.values())  # lowest idf = most frequent alternative
    return {t: alts[t] * ref / v for t, v in known.items()}


def _phrase(seq: tuple[Alternatives, ...], schema: tantivy.Schema, field: str) -> tantivy.Query:
    if all(len(alts) == 1 for alts in seq):
        return tantivy.Query.phrase_query(schema, field, [next(iter(a)) for a in seq])
    # Fuzzy phrase: each position is an alternation of the expanded terms.
    words = ["(?:" + "|".join(re.escape(t) for t in sorted(alts)) + ")" for alts in seq]
    return tantivy.Query.regex_phrase_query(schema, field, words)


def _any(queries: list[tantivy.Query]) -> tantivy.Query:
    if not queries:
        return tantivy.Query.empty_query()
    if len(queries) == 1:
        return queries[0]
    return tantivy.Query.boolean_query([(tantivy.Occur.Should, q) for q in queries])


def max_distance(term: str, requested: int) -> int:
    """Edit distance actually allowed for a term of this length.

    Two typos in a three-letter word match most three-letter words; the
    usual cap (as Elasticsearch's AUTO): exact up to 2 characters, one edit
    up to 5, the requested distance beyond.
    """
    n = len(term)
    if n <= 2:
        return 0
    if n <= 5:
        return min(requested, 1)
    return min(requested, 2)  # tantivy's automata stop at 2


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance with adjacent transpositions costing one (OSA).

    The same notion tantivy's fuzzy automaton uses with
    ``transposition_cost_one=True``; here it only ranks the alternatives the
    automaton already found.
    """
    if a == b:
        return 0
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]
