"""Chunks per second of the default (int8) and the fp32 embedder, interleaved in one run.

    .venv-dev/bin/python bench/embed_speed.py [--chunks 300] [--rounds 5] [--batch 32]
                                              [--threads 2] [--sweep] [--fused-attention]

The chunks are real code: this interpreter's standard library cut by cidx's own
chunker (800 characters), the first ``--chunks`` of them in file order. Both
embedders are loaded once and then run alternately, round after round, so load on
a shared machine hits both alike; the figures are medians (min-max beside them),
and the ratio is the median of the per-round ratios. ``--sweep`` also times the
default embedder at other batch sizes and thread counts (the numbers behind the
defaults). Not part of the test suite: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "daemon_pkg" / "src"))

from cidx_daemon.index.chunking import chunk_text  # noqa: E402
from cidx_daemon.search.embedding import load_embedder  # noqa: E402
from cidx_daemon.search.embedding.bert_onnx import build_bert_onnx  # noqa: E402
from cidx_daemon.search.embedding.minilm import (  # noqa: E402
    OnnxMiniLMEmbedder,
    _session,
    _tokenizer,
    default_threads,
)
from cidx_daemon.search.embedding.model_files import FP32_NAME, INT8_NAME, locate_minilm  # noqa: E402


def stdlib_chunks(count: int) -> list[str]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    chunks: list[str] = []
    for path in sorted(stdlib.glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        chunks += [c.text for c in chunk_text(text, max_chars=800) if c.text.strip()]
        if len(chunks) >= count:
            break
    return chunks[:count]


def rate(embedder, chunks: list[str], batch: int) -> float:
    started = time.perf_counter()
    embedder.embed_documents(chunks, batch_size=batch)
    return len(chunks) / (time.perf_counter() - started)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):6.1f} chunks/s  ({min(values):.1f}-{max(values):.1f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="default: min(2, cores)")
    parser.add_argument("--sweep", action="store_true", help="also batch sizes 8-128 and 1 vs 2 threads")
    parser.add_argument("--fused-attention", action="store_true",
                        help="also time both embedders built with onnxruntime's fused Attention op instead "
                        "of standard ops (the int8 one quantized here, ~15 s)")
    args = parser.parse_args(argv)

    chunks = stdlib_chunks(args.chunks)
    print(f"interpreter: {sys.executable} (Python {sys.version.split()[0]})")
    print(f"cpus: {os.cpu_count()}, load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{len(chunks)} stdlib chunks, mean {sum(map(len, chunks)) / len(chunks):.0f} characters, "
          f"batch {args.batch}, {args.rounds} interleaved rounds")
    default = load_embedder("minilm", threads=args.threads)
    fp32 = load_embedder("minilm-fp32", threads=args.threads)
    contenders = {"minilm": default, "minilm-fp32": fp32}
    if args.fused_attention:
        contenders.update(fused_attention_embedders(args.threads))
    for embedder in contenders.values():  # warm-up: first runs allocate arenas
        embedder.embed_documents(chunks[:32], batch_size=args.batch)
    rates: dict[str, list[float]] = {label: [] for label in contenders}
    ratios: list[float] = []
    for _ in range(args.rounds):
        for label, embedder in contenders.items():
            rates[label].append(rate(embedder, chunks, args.batch))
        ratios.append(rates["minilm"][-1] / rates["minilm-fp32"][-1])
    width = max(len(label) + len(e.name) for label, e in contenders.items()) + 4
    for label, embedder in contenders.items():
        print(f"{f'{label} ({embedder.name}):':{width}} {spread(rates[label])}")
    print(f"ratio default/fp32: {statistics.median(ratios):.2f}x "
          f"(per-round {min(ratios):.2f}-{max(ratios):.2f})")
    sims = (default.embed_documents(chunks, batch_size=args.batch)
            * fp32.embed_documents(chunks, batch_size=args.batch)).sum(axis=1)
    print(f"cosine default vs fp32 over these chunks: min {float(np.min(sims)):.4f}, "
          f"mean {float(np.mean(sims)):.4f}")
    if args.sweep:
        sweep(chunks, args)
    return 0


def fused_attention_embedders(threads: int | None) -> dict[str, OnnxMiniLMEmbedder]:
    """Both embedders built with onnxruntime's fused Attention op (QAttention once quantized)
    instead of MatMul/Softmax/Transpose: same vectors, and whether it is faster depends on the
    CPU's kernels (bert_onnx._attention_fused has the figures so far), so keep it measurable."""
    files = locate_minilm()
    sys.path.insert(0, str(ROOT / "daemon_pkg" / "tools"))
    import make_minilm_model as tool  # the build's own quantizer settings
    cores = threads or default_threads()
    fused = build_bert_onnx(files.weights, files.config, fused_attention=True)
    with tempfile.TemporaryDirectory(prefix="cidx-bench-") as tmp:
        fp32_file = Path(tmp, "fp32.onnx")
        tool.save_graph(fused, fp32_file)
        tool.quantize(fp32_file, Path(tmp, "int8.onnx"))
        int8_session = _session(Path(tmp, "int8.onnx"), cores)  # loaded: the file may go
    tokenizer = _tokenizer(files.tokenizer)
    return {"minilm, fused attention": OnnxMiniLMEmbedder(INT8_NAME, int8_session, tokenizer),
            "minilm-fp32, fused attention": OnnxMiniLMEmbedder(FP32_NAME, _session(fused, cores), tokenizer)}


def sweep(chunks: list[str], args: argparse.Namespace) -> None:
    """The default embedder at other batch sizes and thread counts, interleaved likewise."""
    embedders = {threads: load_embedder("minilm", threads=threads) for threads in (1, 2)}
    settings = [(2, b) for b in (8, 16, 32, 64, 128)] + [(1, 32)]
    results: dict[tuple[int, int], list[float]] = {s: [] for s in settings}
    for _ in range(max(3, args.rounds // 2)):
        for threads, batch in settings:
            results[(threads, batch)].append(rate(embedders[threads], chunks, batch))
    for (threads, batch), values in results.items():
        print(f"sweep: threads {threads}, batch {batch:3d}: {spread(values)}")


if __name__ == "__main__":
    raise SystemExit(main())
