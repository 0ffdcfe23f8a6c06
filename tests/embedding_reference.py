"""An independent pure-numpy forward pass of all-MiniLM-L6-v2, for checking the ONNX embedder.

Written straight from the BERT equations, in float64, with the weights loaded
by the `safetensors` package (not the daemon's hand parser) and no ONNX at all,
so a mistake in the graph builder cannot hide behind the same mistake here.
Slow (a few texts per second); used on a handful of texts; test-only.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

MAX_TOKENS = 256
_erf = np.frompyfunc(math.erf, 1, 1)


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class NumpyMiniLM:
    """One text at a time (no padding), so masking is trivially right by construction."""

    def __init__(self, model_dir: Path) -> None:
        self.w = {k: v.astype(np.float64) for k, v in load_file(str(model_dir / "model.safetensors")).items()}
        self.cfg = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_TOKENS)

    def token_ids(self, text: str) -> list[int]:
        return self.tokenizer.encode(text).ids

    def _dense(self, x: np.ndarray, prefix: str) -> np.ndarray:
        return x @ self.w[f"{prefix}.weight"].T + self.w[f"{prefix}.bias"]

    def _ln(self, x: np.ndarray, prefix: str) -> np.ndarray:
        eps = float(self.cfg["layer_norm_eps"])
        return _layer_norm(x, self.w[f"{prefix}.weight"], self.w[f"{prefix}.bias"], eps)

    def hidden_states(self, ids: list[int]) -> np.ndarray:
        w, n = self.w, len(ids)
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:n]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = self._ln(x, "embeddings.LayerNorm")
        heads = int(self.cfg["num_attention_heads"])
        d = x.shape[1] // heads
        for i in range(int(self.cfg["num_hidden_layers"])):
            p = f"encoder.layer.{i}"
            q, k, v = (
                self._dense(x, f"{p}.attention.self.{m}").reshape(n, heads, d).transpose(1, 0, 2)
                for m in ("query", "key", "value")
            )
            attn = _softmax(q @ k.transpose(0, 2, 1) / math.sqrt(d)) @ v
            attn = attn.transpose(1, 0, 2).reshape(n, heads * d)
            attn = self._dense(attn, f"{p}.attention.output.dense")
            x = self._ln(attn + x, f"{p}.attention.output.LayerNorm")
            h = self._dense(x, f"{p}.intermediate.dense")
            h = 0.5 * h * (1.0 + _erf(h / math.sqrt(2.0)).astype(np.float64))
            x = self._ln(self._dense(h, f"{p}.output.dense") + x, f"{p}.output.LayerNorm")
        return x

    def embed(self, text: str) -> np.ndarray:
        pooled = self.hidden_states(self.token_ids(text)).mean(axis=0)
        return pooled / np.linalg.norm(pooled)


@lru_cache(maxsize=1)
def numpy_minilm(model_dir: Path) -> NumpyMiniLM:
    return NumpyMiniLM(model_dir)
