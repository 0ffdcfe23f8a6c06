"""Full-text engine benchmark on the running interpreter's standard library.

Builds an FTS index of every stdlib ``.py`` file (chunked like the indexer
when ``cidx_daemon.index.chunking`` is importable, else naively by 50 lines),
then prints build figures and the median latency of a few queries per mode.
Not part of the test suite; run it by hand:

    python bench/fts_bench.py [--repeat N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "daemon_pkg" / "src"))

import numpy as np  # noqa: E402

from cidx_daemon.search.fts import FtsDoc, FtsIndex, build_fts_index  # noqa: E402

QUERIES: list[tuple[str, str, dict[str, object]]] = [
    ("regex", "urlopen", {"regex": True}),  # first regex query: includes decoding every text once
    ("plain", "urlopen", {}),
    ("plain", "HTTPResponse", {}),
    ("plain", "parse http response", {}),
    ("plain", "self", {}),
    ("phrase", '"read the file"', {}),
    ("phrase", "os.path.join", {}),
    ("fuzzy", "urlopne", {"edit_distance": 2}),
    ("fuzzy", "conection timeout", {"edit_distance": 1}),
    ("case", "HTTPResponse", {"case_sensitive": True}),
    ("case", "Self", {"case_sensitive": True}),
    ("regex", r"def \w+_\w+\(", {"regex": True}),
    ("regex", r"^class \w+Error", {"regex": True}),
    ("regex", "urlopen", {"regex": True}),
    ("regex", "self", {"regex": True, "case_sensitive": True}),
    ("regex", r"\w+Error", {"regex": True}),
    ("filter", "self", {"filter": True}),
]


def _chunks(text: str) -> Iterator[tuple[int, str]]:
    try:
        from cidx_daemon.index.chunking import chunk_text
    except ImportError:
        lines = text.split("\n")
        for i in range(0, len(lines), 50):
            body = "\n".join(lines[i:i + 50])
            if body.strip():
                yield i + 1, body
        return
    for chunk in chunk_text(text):
        yield chunk.start_line, chunk.text


def stdlib_docs() -> list[FtsDoc]:
    root = Path(sysconfig.get_paths()["stdlib"])
    docs: list[FtsDoc] = []
    for path in sorted(root.rglob("*.py")):
        if "site-packages" in path.parts:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        rel = path.relative_to(root).as_posix()
        for start, body in _chunks(text):
            docs.append(FtsDoc(row=len(docs), path=rel, language="python", start_line=start, text=body))
    return docs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--keep", type=Path, help="build here and keep it (default: a temp dir)")
    args = ap.parse_args()
    print(f"python: {sys.executable} ({sys.version.split()[0]})")
    docs = stdlib_docs()
    chars = sum(len(d.text) for d in docs)
    print(f"corpus: {len(docs)} chunks, {chars / 1e6:.1f} M chars")
    tmp = Path(tempfile.mkdtemp(prefix="fts-bench-"))
    target = args.keep or tmp / "fts"
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        build_fts_index(target, docs)
        build_s = time.perf_counter() - t0
        build_cpu = time.process_time() - c0
        size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
        print(f"build: {build_s:.2f} s ({build_cpu:.2f} s CPU, all threads),"
              f" {len(docs) / build_s:.0f} docs/s, size {size / 1e6:.1f} MB")
        t0 = time.perf_counter()
        index = FtsIndex.open(target)
        print(f"open: {(time.perf_counter() - t0) * 1000:.1f} ms")
        rng = np.random.default_rng(0)
        mask = rng.random(len(docs)) < 0.1
        # CPU time next to wall time: on a shared machine wall time mostly measures the neighbours.
        print(f"{'mode':8} {'query':28} {'hits':>5} {'first ms':>9} {'median ms':>10} {'cpu ms':>7}")
        for mode, text, opts in QUERIES:
            kwargs = dict(opts)
            if kwargs.pop("filter", False):
                kwargs["allowed_rows"] = mask
            times: list[float] = []
            cpu: list[float] = []
            hits = []
            for _ in range(args.repeat):
                t0, c0 = time.perf_counter(), time.process_time()
                hits = index.search(text, limit=10, **kwargs)  # type: ignore[arg-type]
                times.append((time.perf_counter() - t0) * 1000)
                cpu.append((time.process_time() - c0) * 1000)
            print(f"{mode:8} {text:28} {len(hits):5d} {times[0]:9.1f} {statistics.median(times):10.1f}"
                  f" {statistics.median(cpu):7.1f}")
        index.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
