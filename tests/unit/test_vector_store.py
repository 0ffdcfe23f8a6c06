"""Shared vector files (``index/vector_store.py``) against the dense matrix they stand for.

A generation's vectors are a base carried by hard link, a delta and a row map; whatever
sequence of saves (rows kept, dropped, added) and embedder publishes (vectors for some
rows) produced them, they must read exactly as the dense ``(n, dim)`` matrix the old
format wrote, and never hold more than ``slack(n)`` vectors nobody maps.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cidx_daemon.index import vector_store as vs

DIM = 4


def _check(gen_dir: Path, reference: np.ndarray) -> vs.Vectors:
    vectors = vs.open_vectors(gen_dir)
    assert vectors.shape == reference.shape
    np.testing.assert_array_equal(vectors.dense(), reference)
    np.testing.assert_array_equal(np.asarray(vectors), reference)
    query = np.arange(1, DIM + 1, dtype=np.float32)
    np.testing.assert_allclose(vectors.scores(query), reference @ query, rtol=1e-6, atol=1e-6)
    if len(reference):
        rows = np.array([0, len(reference) - 1, len(reference) // 2])
        np.testing.assert_array_equal(vectors.take(rows), reference[rows])
        np.testing.assert_array_equal(vectors[int(rows[-1])], reference[rows[-1]])
    unused = vectors.stored - np.unique(vectors.source()[vectors.source() >= 0]).size
    assert unused <= vs.slack(len(reference))  # bounded by the compaction rule
    assert (len(vectors.delta) if vectors.delta is not None else 0) <= vs.slack(len(reference))
    return vectors


# A save keeps runs of the previous rows (in order: chunk ids ascend) and appends new ones.
_save = st.tuples(st.lists(st.booleans(), max_size=60), st.integers(0, 12))
_publish = st.lists(st.integers(0, 10_000), max_size=12)
_steps = st.lists(st.one_of(st.tuples(st.just("save"), _save), st.tuples(st.just("publish"), _publish)),
                  min_size=1, max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=_steps, floor=st.sampled_from([1, 4, 1024]), seed=st.integers(0, 2**16))
def test_any_history_reads_as_the_dense_matrix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               steps: list, floor: int, seed: int) -> None:
    monkeypatch.setattr(vs, "SLACK_FLOOR", floor)  # 1 and 4: compaction happens in small histories
    rng = np.random.default_rng(seed)
    run = tmp_path / f"run-{seed}-{len(os.listdir(tmp_path))}"
    run.mkdir()
    reference = np.zeros((0, DIM), dtype=np.float32)
    current: Path | None = None
    for i, (kind, arg) in enumerate(steps):
        gen = run / f"gen-{i}"
        gen.mkdir()
        if kind == "save" or current is None:
            keep, added = arg if kind == "save" else ([], 3)
            keep = (keep + [True] * len(reference))[:len(reference)]
            blocks, new_first = [], 0
            for old, kept in enumerate(keep):
                if kept:
                    blocks.append((new_first, old, 1))
                    new_first += 1
            n = new_first + added
            previous = vs.open_vectors(current) if current is not None else None
            vs.carry(previous, current, gen, n, DIM, blocks)
            kept_rows = [old for old, kept in enumerate(keep) if kept]
            reference = np.concatenate([reference[kept_rows], np.zeros((added, DIM), dtype=np.float32)])
        else:
            rows = np.unique(np.array(arg, dtype=np.int64) % len(reference)) if len(reference) else []
            new = rng.standard_normal((len(rows), DIM)).astype(np.float32)
            vs.with_new_vectors(vs.open_vectors(current), current, gen, np.asarray(rows, dtype=np.int64), new)
            reference = reference.copy()
            if len(rows):
                reference[rows] = new
        _check(gen, reference)
        current = gen


def test_a_save_links_the_vectors_and_writes_only_a_row_map(tmp_path: Path) -> None:
    """The point of the layout: a save on a big project writes 8 bytes a row, not the matrix."""
    first, second, third = (tmp_path / name for name in ("a", "b", "c"))
    for d in (first, second, third):
        d.mkdir()
    n = 5000
    dense = np.random.default_rng(1).standard_normal((n, DIM)).astype(np.float32)
    vs.write_dense(first, dense)
    # Save: rows 10..19 (a changed file) dropped, its 12 new chunks appended.
    blocks = [(0, 0, 10), (10, 20, n - 20)]
    vs.carry(vs.open_vectors(first), first, second, n - 10 + 12, DIM, blocks)
    assert os.stat(second / vs.BASE).st_ino == os.stat(first / vs.BASE).st_ino
    assert not (second / vs.DELTA).exists()
    # The embedder publishes the 12 new vectors: appended to a delta, base still shared.
    new = np.ones((12, DIM), dtype=np.float32)
    vs.with_new_vectors(vs.open_vectors(second), second, third, np.arange(n - 10, n + 2), new)
    assert os.stat(third / vs.BASE).st_ino == os.stat(first / vs.BASE).st_ino
    assert np.load(third / vs.DELTA).shape == (12, DIM)
    expected = np.concatenate([dense[:10], dense[20:], new])
    _check(third, expected)


def test_damaged_row_maps_are_refused(tmp_path: Path) -> None:
    vs.write_dense(tmp_path, np.zeros((3, DIM), dtype=np.float32))
    np.save(tmp_path / vs.ROWS, np.array([0, 1, 7], dtype=np.int64))
    with pytest.raises(ValueError, match="outside"):
        vs.open_vectors(tmp_path)
    np.save(tmp_path / vs.ROWS, np.array([0, 1, 2], dtype=np.int32))
    with pytest.raises(ValueError, match="int64"):
        vs.open_vectors(tmp_path)
    (tmp_path / vs.ROWS).unlink()
    np.save(tmp_path / vs.DELTA, np.zeros((1, DIM), dtype=np.float32))
    with pytest.raises(ValueError, match="without"):
        vs.open_vectors(tmp_path)
