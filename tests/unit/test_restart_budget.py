"""The persisted restart budget file (cidx.restart_budget), on real files."""

from __future__ import annotations

import json
import os
import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cidx.recovery import Recovery
from cidx.restart_budget import FILENAME, clear_budget, load_budget, locked, save_budget


def prune(stamps, now, window_s):
    """The recovery machine's view of a loaded budget (rule R6)."""
    return list(Recovery(enabled=True, protocol_version=1, now=now, budget=stamps, window_s=window_s).budget)


@pytest.fixture
def path(tmp_path):
    (tmp_path / ".code-indexer").mkdir()
    return tmp_path / ".code-indexer" / FILENAME


def mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_round_trip(path):
    save_budget(path, [1000.0, 1010.5])
    assert json.loads(path.read_text()) == {"restarts": [1000.0, 1010.5]}
    assert load_budget(path) == [1000.0, 1010.5]


def test_missing_file_is_an_empty_budget(path):
    assert load_budget(path) == []
    clear_budget(path)  # no error either


@pytest.mark.parametrize("content", [
    b"", b"{", b"\xff\xfe garbage", b"[1, 2]", b'{"restarts": 5}', b'{"other": [1]}', b"null",
    b"[" * 100_000,  # deep enough to blow the JSON decoder's recursion
])
def test_corrupt_file_is_an_empty_budget(path, content):
    path.write_bytes(content)
    assert load_budget(path) == []


def test_junk_entries_are_dropped(path):
    path.write_text('{"restarts": [1, 2.5, "3", true, null, NaN, Infinity, -Infinity, 1e999, %s, [4]]}'
                    % ("9" * 400))
    assert load_budget(path) == [1.0, 2.5]


def test_unreadable_path_is_an_empty_budget(path):
    path.mkdir()  # a directory where the file should be
    assert load_budget(path) == []


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o277])
def test_saved_file_is_private_whatever_the_umask(path, umask):
    old = os.umask(umask)
    try:
        save_budget(path, [1.0])
    finally:
        os.umask(old)
    assert mode(path) == 0o600


def test_replaces_a_world_readable_file_and_a_leftover_temp(path):
    path.write_text('{"restarts": [1.0]}')
    os.chmod(path, 0o644)
    leftover = path.parent / f".{FILENAME}.{os.getpid()}.tmp"
    leftover.write_text("half a write from a killed client")
    os.chmod(leftover, 0o644)
    before = os.stat(path).st_ino

    save_budget(path, [2.0, 3.0])

    assert load_budget(path) == [2.0, 3.0]
    assert mode(path) == 0o600
    assert os.stat(path).st_ino != before  # replaced, not rewritten in place
    assert sorted(p.name for p in path.parent.iterdir()) == [FILENAME]


def test_failed_save_leaves_the_old_file_and_no_temp(path, monkeypatch):
    save_budget(path, [1.0])

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        save_budget(path, [2.0])
    assert load_budget(path) == [1.0]
    assert sorted(p.name for p in path.parent.iterdir()) == [FILENAME]


def test_clear_removes_the_file(path):
    save_budget(path, [1.0])
    clear_budget(path)
    assert not path.exists() and load_budget(path) == []


def test_prune_keeps_the_window_and_drops_the_future():
    stamps = [1000.5, 50.0, 999.0, 400.0, 401.0, 1000.0, 999.0]
    assert prune(stamps, now=1000.0, window_s=600) == [401.0, 999.0, 999.0, 1000.0]


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6)),
       st.floats(min_value=-1e6, max_value=1e6), st.floats(min_value=0.001, max_value=1e6))
def test_prune_keeps_a_sorted_sub_multiset_of_recent_past_timestamps(timestamps, now, window_s):
    kept = prune(timestamps, now, window_s)
    assert kept == sorted(kept)
    assert all(kept.count(t) == timestamps.count(t) for t in kept)  # whole groups, nothing invented
    for t in timestamps:
        assert (t in kept) == (t <= now and now - t < window_s)


def test_restarts_are_recorded_under_a_lock_so_concurrent_clients_lose_nothing(path):
    """Eight clients each record a restart at once (read, append, write under ``locked``):
    every timestamp survives. Without the lock, last-writer-wins loses most of them."""
    import threading

    start = threading.Barrier(8)

    def record(t: float) -> None:
        start.wait()
        with locked(path):
            save_budget(path, [*load_budget(path), t])

    threads = [threading.Thread(target=record, args=(float(i),)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(load_budget(path)) == [float(i) for i in range(8)]
    assert mode(str(path) + ".lock") == 0o600
