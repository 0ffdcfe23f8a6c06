"""The stdlib docstring -> function set: describe a function in words, find its code.

From the running interpreter's standard library (no tests, GUI, vendored tools),
functions and methods whose docstring's first sentence reads like a query
("Return the number of days in a month", not "Same as foo." or a doctest) are
sampled with a fixed seed. A corpus copy of the files that hold them is written
with exactly those docstrings blanked (``docstrip``), so the query text is not
in the corpus and the search must find the function from its code, its name and
the comments around it. A hit is a result chunk in the function's file whose line
span overlaps the function's. Scored as MRR@10 (and hit rate @10).

Size: files are added in a seeded order until a budget of functions or bytes is
reached (defaults: 4,000 functions, 3 MB, about 4,000 chunks: ~3 minutes of
embedding here), so the set is the same on every run of the same Python version.

A held-out twin (``ensure(..., heldout=True)``): the same budget and rules over the library's
*other* files (none of the set's own) with another seed. Tune on the set, check on the
twin: a describing-query weight that lifted the set by 0.005 lowered the twin by 0.007.
"""

from __future__ import annotations

import ast
import json
import random
import re
import shutil
import sys
import sysconfig
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from .docstrip import DocFunction, blank_docstrings, documented_functions, first_sentence
from .metric import Target

SEED = 20261202
HELDOUT_SEED = 7
#: Not the library itself, or not worth indexing (as bench/workspace.py's STDLIB_EXCLUDES).
EXCLUDED_DIRS = frozenset({
    "test", "tests", "idlelib", "tkinter", "lib2to3", "site-packages", "dist-packages", "ensurepip",
    "turtledemo", "pydoc_data", "__pycache__", "lib-dynload", "__phello__",
})
MAX_FILE_BYTES = 150_000  # a single huge module (e.g. _pydecimal) would dominate the corpus
#: First sentences that are not a description of behaviour.
_BAD_STARTS = (
    "same as", "like ", "see ", "alias", "deprecated", "override", "implement", "internal", "helper",
    "xxx", "todo", "undocumented", "dummy", "stub", "this method", "this function", "equivalent to",
    "compatibility", "backward", "for backward", "for internal", "private", "used by", "called by",
    "wrapper", "a wrapper", "shortcut", "convenience", "docstring", "no-op", "placeholder",
)
_WORD = re.compile(r"[A-Za-z]+")


@dataclass(frozen=True)
class DocQuery:
    """One query of the set: the sentence, and the function it describes."""

    text: str
    path: str  # relative to the corpus root
    qualname: str
    start_line: int
    end_line: int

    @property
    def target(self) -> Target:
        return Target(self.path, self.start_line, self.end_line)


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"]).resolve()


def _is_excluded(rel: Path) -> bool:
    return any(part in EXCLUDED_DIRS or part.startswith("config-") for part in rel.parts[:-1])


def stdlib_files(root: Path) -> list[Path]:
    """Library source files, relative to ``root``, sorted (so the seeded order is stable)."""
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if _is_excluded(rel) or path.stat().st_size > MAX_FILE_BYTES:
            continue
        out.append(rel)
    return out


def acceptable(sentence: str, fn: DocFunction) -> bool:
    """Would a person type this to find the function? Heuristic, deliberately strict."""
    words = _WORD.findall(sentence)
    if not 4 <= len(sentence.split()) <= 24 or not 20 <= len(sentence) <= 160 or len(words) < 4:
        return False
    if not sentence[0].isalpha() or ">>>" in sentence or "::" in sentence or "deprecated" in sentence.lower():
        return False
    if sentence.lower().startswith(_BAD_STARTS):
        return False
    return not (fn.name.startswith("__") and fn.name.endswith("__"))


@dataclass
class ParsedFile:
    rel: Path
    source: str
    functions: int  # all function definitions
    documented: list[DocFunction]


def _parse(root: Path, rel: Path) -> ParsedFile | None:
    try:
        source = (root / rel).read_text(encoding="utf-8")
        tree = ast.parse(source)
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return None
    if "\r" in source:  # line numbering must agree between ast, docstrip and the walker
        return None
    n = sum(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in ast.walk(tree))
    return ParsedFile(rel, source, n, documented_functions(tree))


def build(dest: Path, *, n_queries: int = 400, max_functions: int = 4000, max_bytes: int = 3_000_000,
          seed: int = SEED, excluded: frozenset[Path] = frozenset()) -> list[DocQuery]:
    """Write the blanked corpus to ``dest`` (replaced) and return its queries; files in
    ``excluded`` (relative to the library) are not used."""
    root = stdlib_root()
    parsed = [p for p in (_parse(root, rel) for rel in stdlib_files(root) if rel not in excluded)
              if p is not None]
    # A sentence that describes two functions (overrides, copies) cannot have one right answer.
    counts = Counter(first_sentence(f.docstring).lower() for p in parsed for f in p.documented)
    rng = random.Random(seed)
    order = parsed[:]
    rng.shuffle(order)
    chosen: list[ParsedFile] = []
    n_funcs = n_bytes = 0
    for p in order:
        if not any(acceptable(first_sentence(f.docstring), f) for f in p.documented):
            continue
        if n_funcs + p.functions > max_functions or n_bytes + len(p.source) > max_bytes:
            continue
        chosen.append(p)
        n_funcs += p.functions
        n_bytes += len(p.source)
    candidates = [(p, f) for p in sorted(chosen, key=lambda p: str(p.rel)) for f in p.documented
                  if acceptable(first_sentence(f.docstring), f)
                  and counts[first_sentence(f.docstring).lower()] == 1]
    picked = rng.sample(candidates, min(n_queries, len(candidates)))
    by_file: dict[Path, list[DocFunction]] = {}
    for p, f in picked:
        by_file.setdefault(p.rel, []).append(f)

    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    texts: dict[Path, str] = {}
    for p in chosen:
        text = blank_docstrings(p.source, by_file.get(p.rel, []))
        ast.parse(text)  # still Python: a bug here must not pass silently
        assert text.count("\n") == p.source.count("\n")
        out = tmp / p.rel
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        texts[p.rel] = " ".join(text.lower().split())
    everything = "\n".join(texts.values())
    queries = []
    for p, f in sorted(picked, key=lambda pf: (str(pf[0].rel), pf[1].start_line)):
        sentence = first_sentence(f.docstring)
        if " ".join(sentence.lower().split()) in everything:  # still verbatim somewhere (a comment...)
            continue
        queries.append(DocQuery(sentence, p.rel.as_posix(), f.qualname, f.start_line, f.end_line))
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return queries


def ensure(cache: Path, *, quick: bool = False, heldout: bool = False) -> tuple[Path, list[DocQuery], dict]:
    """The cached corpus and queries (rebuilt when the Python version or the parameters change).

    ``heldout``: the twin set over files the (full) set does not hold, with ``HELDOUT_SEED``."""
    params = {"python": sys.version.split()[0], "stdlib": str(stdlib_root()),
              "seed": HELDOUT_SEED if heldout else SEED,
              "n_queries": 100 if quick else 400, "max_functions": 1000 if quick else 4000,
              "max_bytes": 750_000 if quick else 3_000_000, "version": 1}
    name = "stdlib-doc-quick" if quick else "stdlib-doc"
    if heldout:
        name += "-heldout"
        params["excluding"] = "stdlib-doc"
    dest = cache / "corpora" / name
    meta_path = cache / "corpora" / f"{name}.queries.json"
    if dest.is_dir() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("params") == params:
            return dest, [DocQuery(**q) for q in meta["queries"]], meta["summary"]
    excluded: frozenset[Path] = frozenset()
    if heldout:
        main_set, _, _ = ensure(cache)
        excluded = frozenset(p.relative_to(main_set) for p in main_set.rglob("*.py"))
    queries = build(dest, n_queries=params["n_queries"], max_functions=params["max_functions"],
                    max_bytes=params["max_bytes"], seed=params["seed"], excluded=excluded)
    files = [p for p in dest.rglob("*.py")]
    summary = {"files": len(files), "bytes": sum(p.stat().st_size for p in files),
               "functions": sum(sum(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                                    for n in ast.walk(ast.parse(p.read_text(encoding="utf-8"))))
                                for p in files),
               "queries": len(queries)}
    meta_path.write_text(json.dumps({"params": params, "summary": summary,
                                     "queries": [asdict(q) for q in queries]}, indent=1))
    return dest, queries, summary
