"""The search-quality benchmark's pure parts: semble's metric and docstring blanking.

Fast and offline: no index, no model, no registry.
"""

from __future__ import annotations

import ast
import math
import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from quality.annotations import infer_category
from quality.docstrip import blank_docstrings, documented_functions, first_sentence
from quality.metric import (
    Hit,
    Target,
    covers,
    ndcg_at_k,
    path_matches,
    percentile,
    reciprocal_rank,
    target_rank,
)

LOG3 = math.log2(3)


def test_ndcg_known_ranks() -> None:
    assert ndcg_at_k([1], 1) == 1.0
    assert math.isclose(ndcg_at_k([2], 1), 1 / LOG3)
    assert math.isclose(ndcg_at_k([1, None], 2), 1 / (1 + 1 / LOG3))
    assert math.isclose(ndcg_at_k([2, 1], 2), 1.0)  # order among relevant results does not matter
    assert ndcg_at_k([11], 1) == 0.0  # outside the top 10
    assert ndcg_at_k([None], 1) == 0.0
    assert ndcg_at_k([1], 0) == 0.0  # nothing present: semble scores 0


def test_ndcg_gain_is_set_per_rank_not_added() -> None:
    # Two targets covered by the same result (rank 3): DCG counts it once, the ideal twice.
    assert math.isclose(ndcg_at_k([3, 3], 2), (1 / 2) / (1 + 1 / LOG3))


def test_ndcg_ideal_is_capped_at_k() -> None:
    ranks = list(range(1, 11))
    assert math.isclose(ndcg_at_k(ranks, 12), 1.0)


def test_path_matches_is_a_suffix_either_way() -> None:
    assert path_matches("src/flask/app.py", "src/flask/app.py")
    assert path_matches("/abs/checkout/src/flask/app.py", "src/flask/app.py")
    assert path_matches("app.py", "src/flask/app.py")
    assert not path_matches("src/flask/sansio/app.py", "src/flask/app.py")
    assert not path_matches("src/flask/myapp.py", "app.py")  # whole path components only


def test_span_targets_need_overlap_file_targets_do_not() -> None:
    span = Target("a/b.py", 10, 20)
    assert covers(Hit("a/b.py", 20, 30), span)
    assert covers(Hit("a/b.py", 1, 10), span)
    assert not covers(Hit("a/b.py", 21, 40), span)
    assert covers(Hit("a/b.py", 500, 510), Target("a/b.py"))
    hits = [Hit("x.py", 1, 5), Hit("a/b.py", 30, 40), Hit("a/b.py", 12, 14)]
    assert target_rank(hits, span) == 3
    assert target_rank(hits, Target("b.py")) == 2


def test_reciprocal_rank_and_percentile() -> None:
    assert reciprocal_rank(4) == 0.25
    assert reciprocal_rank(None) == 0.0
    assert reciprocal_rank(11) == 0.0
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert percentile([float(i) for i in range(1, 101)], 95) == 95.0


def test_semble_category_inference() -> None:
    assert infer_category("Blueprint") == "symbol"
    assert infer_category("how are routes registered") == "architecture"
    assert infer_category("session management") == "semantic"


SOURCE = textwrap.dedent('''\
    """Module docstring stays."""
    import functools


    def plain(x):
        """Return the square of x.

        A longer explanation
        over several lines.
        """
        return x * x


    class Box:
        """Class docstring stays."""

        @functools.cache
        def size(self): "Return the size of the box in litres."; return 1

        async def fetch(self, url):
            """Fetch the café's menu — with a non-ASCII docstring."""
            return url

        def kept(self):
            """This one is not selected and keeps its docstring."""
            return None
''')


def test_documented_functions_positions() -> None:
    funcs = {f.qualname: f for f in documented_functions(ast.parse(SOURCE))}
    assert set(funcs) == {"plain", "Box.size", "Box.fetch", "Box.kept"}
    assert (funcs["plain"].start_line, funcs["plain"].end_line) == (5, 11)
    assert funcs["Box.size"].start_line == 17  # the decorator's line
    assert first_sentence(funcs["plain"].docstring) == "Return the square of x"


def test_blanking_keeps_every_line_in_place() -> None:
    tree = ast.parse(SOURCE)
    chosen = [f for f in documented_functions(tree) if f.qualname != "Box.kept"]
    out = blank_docstrings(SOURCE, chosen)
    assert out.count("\n") == SOURCE.count("\n")
    new = ast.parse(out)
    before = {f.qualname: (f.start_line, f.end_line) for f in documented_functions(tree)}
    after_funcs = {n.name: n for n in ast.walk(new) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    for qual, (_start, end) in before.items():
        assert after_funcs[qual.rpartition(".")[2]].end_lineno == end
    assert ast.get_docstring(after_funcs["plain"]) == ""
    assert ast.get_docstring(after_funcs["size"]) == ""
    assert ast.get_docstring(after_funcs["fetch"]) == ""
    assert ast.get_docstring(after_funcs["kept"]).startswith("This one")
    for gone in ("square", "litres", "café", "longer explanation"):
        assert gone not in out
    assert '"""Module docstring stays."""' in out and '"""Class docstring stays."""' in out
    assert 'def size(self): ""; return 1' in out  # code after a one-line docstring survives
