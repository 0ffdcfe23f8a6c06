"""Signature vectors (``index/signatures.py``): what is embedded for a definition, and the
slots that hold the vectors, through any history of saves and publishes.

The slot store is checked against a plain model (row -> its signature vectors) the way
``test_vector_store`` checks the chunk vectors against the dense matrix.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cidx_daemon.index import signatures as sigs
from cidx_daemon.index import vector_store as vs

DIM = 4


@pytest.mark.parametrize(("lines", "expected"), [
    (["def parse(text, *, strict=False):", "    return text"], "def parse(text, *, strict=False):"),
    (["    async def fetch(", "        url: str,", "        timeout: float = 1.0,", "    ) -> bytes:",
      "        ..."], "async def fetch( url: str, timeout: float = 1.0, ) -> bytes:"),
    (["func (c *Context) JSON(code int, obj any) {", "\tc.Render(code, obj)", "}"],
     "func (c *Context) JSON(code int, obj any)"),
    (["pub fn spawn<F>(future: F) -> JoinHandle<F::Output>", "where", "    F: Future + Send,", "{"],
     "pub fn spawn<F>(future: F) -> JoinHandle<F::Output>"),
    (["export function parse(input: string): Result {", "  return x;", "}"],
     "export function parse(input: string):"),  # the return type is cut at its colon
    (["  abstract send(request: Request)", "  other()"], "abstract send(request: Request)"),
    (["macro_rules! select {", "  () => {}", "}"], "macro_rules! select"),
])
def test_a_signature_ends_where_the_body_starts(lines: list[str], expected: str) -> None:
    assert sigs.signature(lines, 0) == expected


@pytest.mark.parametrize(("name", "words"), [
    ("get_content_charset", "\nget content charset"),
    ("getEffectiveLevel", "\nget effective level"),
    ("_parse_command_opts", "\nparse command opts"),
    ("HTTPAdapter", "\nhttp adapter"),
    ("running", ""),
    ("__init__", ""),
])
def test_a_compound_name_is_also_given_as_words(name: str, words: str) -> None:
    assert sigs.name_words(name) == words


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(st.text(max_size=120), min_size=1, max_size=20), first=st.integers(0, 25))
def test_any_text_gives_one_bounded_line(lines: list[str], first: int) -> None:
    """Chunks are untrusted text: unbalanced brackets, a missing body, anything."""
    out = sigs.signature(lines, first)
    assert len(out) <= sigs.MAX_CHARS
    assert "\n" not in out and out == out.strip()


# --------------------------------------------------------------------------- the slots


def _check(gen_dir: Path, model: dict[int, np.ndarray], n_rows: int) -> sigs.Signatures:
    opened = sigs.open_signatures(gen_dir, n_rows, DIM)
    owners = np.asarray(opened.owners)
    expected_owners = np.array([r for r in sorted(model) for _ in range(len(model[r]))], dtype=np.int64)
    np.testing.assert_array_equal(owners, expected_owners)
    stored = np.asarray(opened.vectors)
    for row in sorted(model):
        np.testing.assert_array_equal(stored[owners == row], model[row])
    # best(): each row raised to its best signature score, every other row as it was; with
    # more signatures than FULL_SCAN, only the CANDIDATES rows closest by their own score
    query = np.arange(1, DIM + 1, dtype=np.float32)
    base = np.linspace(-1, 1, n_rows).astype(np.float32)
    allowed = np.arange(n_rows) % 3 != 1
    for mask in (None, allowed):
        expected = base.copy()
        near = base if mask is None else np.where(mask, base, -np.inf)
        close = set(np.argsort(-near, kind="stable")[:sigs.CANDIDATES].tolist())
        for row, vectors in model.items():
            if len(vectors) and (len(owners) <= sigs.FULL_SCAN or row in close):
                expected[row] = max(expected[row], float((vectors @ query).max()))
        shown = slice(None) if mask is None else mask  # a masked row's score is never read
        got = opened.best(base, query, mask)
        np.testing.assert_allclose(got[shown], expected[shown], rtol=1e-6, atol=1e-6)
    assert opened.vectors.stored - len(owners) <= vs.slack(len(owners))  # unused slots bounded
    return opened


_save = st.tuples(st.lists(st.booleans(), max_size=40), st.integers(0, 8))
_publish = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 3)), max_size=10)
_steps = st.lists(st.one_of(st.tuples(st.just("save"), _save), st.tuples(st.just("publish"), _publish)),
                  min_size=1, max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=_steps, floor=st.sampled_from([1, 4, 1024]), seed=st.integers(0, 2**16),
       candidates=st.sampled_from([1, 3, 10, 2000]))
def test_any_history_keeps_each_rows_signatures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                steps: list, floor: int, seed: int, candidates: int) -> None:
    """Saves carry runs of rows (a row's slots move with it, a dropped row's go); publishes
    give rows their signatures (replacing any they had). Whatever the history, each row reads
    back exactly its own signatures, and best() scores them (all, or the closest rows')."""
    monkeypatch.setattr(vs, "SLACK_FLOOR", floor)
    monkeypatch.setattr(sigs, "CANDIDATES", candidates)  # small: the path a big project takes
    monkeypatch.setattr(sigs, "FULL_SCAN", candidates)
    rng = np.random.default_rng(seed)
    run = tmp_path / f"run-{seed}-{len(os.listdir(tmp_path))}"
    run.mkdir()
    model: dict[int, np.ndarray] = {}
    n_rows = 0
    current: Path | None = None
    for i, (kind, arg) in enumerate(steps):
        gen = run / f"gen-{i}"
        gen.mkdir()
        if kind == "save" or current is None:
            keep, added = arg if kind == "save" else ([], 3)
            keep = (keep + [True] * n_rows)[:n_rows]
            blocks, new_first, moved = [], 0, {}
            for old, kept in enumerate(keep):
                if kept:
                    if blocks and blocks[-1][0] + blocks[-1][2] == new_first and \
                            blocks[-1][1] + blocks[-1][2] == old:
                        blocks[-1] = (blocks[-1][0], blocks[-1][1], blocks[-1][2] + 1)
                    else:
                        blocks.append((new_first, old, 1))
                    if old in model:
                        moved[new_first] = model[old]
                    new_first += 1
            previous = sigs.open_signatures(current, n_rows, DIM) if current is not None else None
            sigs.carry(previous, current, gen, DIM, blocks)
            model, n_rows = moved, new_first + added
        else:
            wanted: dict[int, int] = {}
            for r, count in arg if n_rows else []:
                wanted.setdefault(r % n_rows, count)  # a row with no callable gets 0
            rows = sorted(wanted)
            counts = np.array([wanted[r] for r in rows], dtype=np.int64)
            new = rng.standard_normal((int(counts.sum()), DIM)).astype(np.float32)
            order = rng.permutation(len(rows))  # publishes come in any row order
            rows_in = np.asarray(rows, dtype=np.int64)[order]
            counts_in = counts[order]
            ends = np.cumsum([0, *counts.tolist()])
            new_in = np.concatenate([new[ends[j]:ends[j + 1]] for j in order] + [np.zeros((0, DIM), "f4")])
            before = sigs.open_signatures(current, n_rows, DIM)
            sigs.with_new(before, current, gen, rows_in, counts_in, new_in)
            for j, row in enumerate(rows):
                model[row] = new[ends[j]:ends[j + 1]]
        model = {r: v for r, v in model.items() if len(v)}
        _check(gen, model, n_rows)
        current = gen


def test_a_save_links_the_signature_vectors(tmp_path: Path) -> None:
    """As for the chunk vectors: a save writes the slot owners and a row map, not the matrix."""
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    owners = np.repeat(np.arange(3000, dtype=np.int64), 2)
    np.save(first / sigs.OWNERS, owners)
    vs.write_dense(first, np.ones((len(owners), DIM), dtype=np.float32), vs.SIGNATURES)
    sigs.carry(sigs.open_signatures(first, 3000, DIM), first, second, DIM, [(0, 0, 10), (10, 20, 2980)])
    assert os.stat(second / vs.SIGNATURES.base).st_ino == os.stat(first / vs.SIGNATURES.base).st_ino
    opened = sigs.open_signatures(second, 2990, DIM)
    assert len(opened) == 2 * 2990 and int(opened.owners[-1]) == 2989


def test_damaged_slots_are_refused(tmp_path: Path) -> None:
    np.save(tmp_path / sigs.OWNERS, np.array([0, 2, 1], dtype=np.int64))
    vs.write_dense(tmp_path, np.zeros((3, DIM), dtype=np.float32), vs.SIGNATURES)
    with pytest.raises(ValueError, match="ascending"):
        sigs.open_signatures(tmp_path, 3, DIM)
    np.save(tmp_path / sigs.OWNERS, np.array([0, 1, 5], dtype=np.int64))
    with pytest.raises(ValueError, match="ascending"):
        sigs.open_signatures(tmp_path, 3, DIM)
    np.save(tmp_path / sigs.OWNERS, np.array([0, 1], dtype=np.int64))
    with pytest.raises(ValueError, match="disagree"):
        sigs.open_signatures(tmp_path, 3, DIM)


# --------------------------------------------------------------------------- through the indexer and engine


def test_a_chunk_scores_as_its_closest_signature(tmp_path: Path) -> None:
    """A function whose body is mostly data is far from a description of what it does; its
    signature is not. The indexer embeds the signature beside the chunk, and semantic search
    scores the chunk by the better of the two (real model, real index, real engine)."""
    from cidx_daemon.index import generation as gens
    from cidx_daemon.index.indexer import index_project
    from cidx_daemon.search.embedding import load_embedder
    from cidx_daemon.search.engine import Engine
    from cidx_shared import config as cfgmod
    from helpers import write_project

    palette = ("crimson", "teal", "amber", "violet", "ochre", "indigo", "saffron", "cobalt")
    table = "\n".join(f"        '{palette[i % 8]}_{i}': ({i}, {i * 7 % 13}, 'glaze {palette[i * 3 % 8]}'),"
                      for i in range(14))  # one chunk still
    root = write_project(tmp_path / "proj", {
        "shipping.py": f"def compute_shipping_cost(order, destination):\n    rates = {{\n{table}\n    }}\n"
                       "    return rates[destination][0] * order.weight\n",
        "colors.py": "def blend_colors(first, second):\n"
                     "    return [(a + b) / 2 for a, b in zip(first, second)]\n",
    })
    config = cfgmod.init_project(root)
    index_project(config)
    gen = gens.open_live(gens.index_dir(root / cfgmod.CONFIG_DIR), with_fts=False)[0]
    assert gen is not None and gen.signatures is not None and gen.n_embedded == len(gen)
    row = next(r for r in range(len(gen)) if gen.table.file_of(r).path == "shipping.py")
    assert sigs.texts_for(gen.table, row) == [
        "shipping.py\ndef compute_shipping_cost(order, destination):\ncompute shipping cost"]
    assert np.asarray(gen.signatures.owners).tolist().count(row) == 1

    query = "compute the shipping cost of an order"
    embedder = load_embedder("minilm")
    q = embedder.embed_query(query)
    body = float(gen.vectors[row] @ q)
    signature = float(embedder.embed_documents(sigs.texts_for(gen.table, row))[0] @ q)
    assert signature > body + 0.05, (signature, body)  # what lets this test fail

    doc = Engine(config).query({"query": query, "semantic": True})
    hit = next(r for r in doc["results"] if r["path"] == "shipping.py")
    assert hit["scores"]["semantic"] == pytest.approx(signature, abs=0.02)


def test_functions_sharing_a_chunk_are_also_embedded_by_their_own_text(tmp_path: Path) -> None:
    """Small definitions merged into one chunk each get their signature and their own first
    ``BODY_CHARS`` (up to the next definition), so "return True if the future is running"
    meets ``return self._state == RUNNING`` and not the average of its neighbours; a function
    alone in its chunk gets only its signature (the chunk's vector is its text already)."""
    from cidx_daemon.index import generation as gens
    from cidx_daemon.index.indexer import index_project
    from cidx_shared import config as cfgmod
    from helpers import write_project

    filler = "".join(f"    # note {i}: the weight is in kilograms\n" for i in range(8))
    root = write_project(tmp_path / "proj", {
        "future.py": "class Future:\n"
                     "    def running(self):\n        return self._state == RUNNING\n\n"
                     "    def done(self):\n        return self._state in (CANCELLED, FINISHED)\n",
        "shipping.py": f"def compute_shipping_cost(order):\n{filler}    return order.weight * 3\n",
    })
    config = cfgmod.init_project(root)
    index_project(config)
    gen = gens.open_live(gens.index_dir(root / cfgmod.CONFIG_DIR), with_fts=False)[0]
    assert gen is not None and gen.signatures is not None
    rows = {gen.table.file_of(r).path: r for r in range(len(gen))}
    assert sigs.texts_for(gen.table, rows["future.py"]) == [
        "future.py Future\ndef running(self):",
        "future.py Future\ndef running(self):\n        return self._state == RUNNING",
        "future.py Future\ndef done(self):",
        "future.py Future\ndef done(self):\n        return self._state in (CANCELLED, FINISHED)",
    ]
    alone = ["shipping.py\ndef compute_shipping_cost(order):\ncompute shipping cost"]
    assert sigs.texts_for(gen.table, rows["shipping.py"]) == alone
    owners = np.asarray(gen.signatures.owners).tolist()
    assert owners.count(rows["future.py"]) == 4 and owners.count(rows["shipping.py"]) == 1
