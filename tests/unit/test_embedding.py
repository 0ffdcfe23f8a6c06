"""The offline embedder: agreement with sentence-transformers, and the contract callers rely on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cidx_daemon.search.embedding import (
    DEFAULT_EMBEDDER,
    Embedder,
    EmbedderError,
    available_embedders,
    load_embedder,
    model_name,
)
from cidx_daemon.search.embedding.bert_onnx import build_bert_onnx, read_safetensors
from cidx_daemon.search.embedding.minilm import (
    MAX_BATCH_TOKENS,
    MAX_TOKENS,
    SORT_WINDOW_BATCHES,
    _token_budget_batches,
)
from cidx_daemon.search.embedding.model_files import locate_minilm
from embedding_reference import numpy_minilm
from helpers import run_in_threads

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = json.loads((ROOT / "tests/fixtures/minilm_reference.json").read_text(encoding="utf-8"))
REF_INPUTS: dict[str, str] = FIXTURE["inputs"]
REF_VECTORS = {k: np.asarray(v, dtype=np.float32) for k, v in FIXTURE["vectors"].items()}

URLLIB_CODE = REF_INPUTS["code_snippet"]
SORT_CODE = (
    "def insertion_sort(items: list[int]) -> list[int]:\n"
    "    for i in range(1, len(items)):\n"
    "        key, j = items[i], i - 1\n"
    "        while j >= 0 and items[j] > key:\n"
    "            items[j + 1] = items[j]\n"
    "            j -= 1\n"
    "        items[j + 1] = key\n"
    "    return items\n"
)


@pytest.fixture(scope="module")
def fp32() -> Embedder:
    return load_embedder("minilm-fp32")


@pytest.fixture(scope="module")
def int8() -> Embedder:
    """The default embedder: the model wheel's int8 graph."""
    return load_embedder("minilm")


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def test_fixture_was_made_by_sentence_transformers_with_a_long_input() -> None:
    assert "sentence-transformers" in FIXTURE["note"]
    assert FIXTURE["max_seq_length"] == MAX_TOKENS
    assert FIXTURE["untruncated_token_counts"]["long_over_256_tokens"] > MAX_TOKENS


def test_fp32_agrees_with_sentence_transformers(fp32: Embedder) -> None:
    names = list(REF_INPUTS)
    got = fp32.embed_documents([REF_INPUTS[n] for n in names])
    expected = np.stack([REF_VECTORS[n] for n in names])
    sims = cosines(got, expected)
    assert sims.min() >= 0.9999, dict(zip(names, sims.tolist(), strict=True))
    assert np.abs(got - expected).max() < 1e-5


def test_fp32_agrees_with_numpy_reference_in_a_padded_batch(fp32: Embedder) -> None:
    # Very different lengths in one batch: padding must be masked out of attention and pooling.
    texts = [REF_INPUTS["short_query"], SORT_CODE, REF_INPUTS["unicode"], REF_INPUTS["blank"]]
    reference = numpy_minilm(locate_minilm().weights.parent)
    expected = np.stack([reference.embed(t) for t in texts])
    got = fp32.embed_documents(texts, batch_size=len(texts))
    assert cosines(got, expected).min() >= 0.9999
    assert np.abs(got - expected).max() < 1e-5


def test_int8_agrees_with_sentence_transformers(int8: Embedder) -> None:
    # One text per run, as queries are embedded: every reference input, the blank one included.
    names = list(REF_INPUTS)
    got = np.stack([int8.embed_query(REF_INPUTS[n]) for n in names])
    sims = cosines(got, np.stack([REF_VECTORS[n] for n in names]))
    assert sims.min() >= 0.98, dict(zip(names, sims.tolist(), strict=True))


def test_int8_agrees_with_fp32_on_fixed_inputs_in_a_padded_batch(int8: Embedder, fp32: Embedder) -> None:
    # Dynamic quantization scales activations per batch tensor, so a row depends a little on
    # its batch-mates: check real code of several shapes and lengths batched together. (A
    # whitespace-only text, nothing but [CLS] [SEP], drops to ~0.974 beside 256-token rows;
    # the chunker never emits one. The mean is 0.990-0.994 depending on the onnxruntime that
    # quantized and runs the model: 0.9899 with 1.32.0.)
    texts = [v for v in REF_INPUTS.values() if v.strip()]
    texts += [URLLIB_CODE, SORT_CODE, URLLIB_CODE * 3, "x", "def f(): pass"]
    sims = cosines(int8.embed_documents(texts, batch_size=len(texts)), fp32.embed_documents(texts))
    assert sims.min() >= 0.98, sims.tolist()
    assert sims.mean() >= 0.985, sims.tolist()


def test_int8_keeps_the_semantic_ranking(int8: Embedder) -> None:
    query = int8.embed_query("open a url with timeout")
    urllib_vec, sort_vec = int8.embed_documents([URLLIB_CODE, SORT_CODE])
    assert float(query @ urllib_vec) > float(query @ sort_vec) + 0.1


def test_int8_graph_runs_integer_kernels() -> None:
    import onnx

    graph = onnx.load(str(locate_minilm().int8_model), load_external_data=False).graph
    ops = {node.op_type for node in graph.node}
    assert "MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops, sorted(ops)


def test_plain_and_fused_attention_graphs_give_the_same_vectors(fp32: Embedder) -> None:
    # bench/embed_speed.py --fused-attention times onnxruntime's fused Attention op against the
    # standard ops: both must be the same model, padding masked alike.
    from cidx_daemon.search.embedding.minilm import OnnxMiniLMEmbedder, _session, _tokenizer

    files = locate_minilm()
    fused = OnnxMiniLMEmbedder("fused", _session(build_bert_onnx(files.weights, files.config,
                                                                 fused_attention=True), 1),
                               _tokenizer(files.tokenizer))
    texts = [REF_INPUTS["short_query"], SORT_CODE, URLLIB_CODE * 3, REF_INPUTS["unicode"]]
    got, expected = fused.embed_documents(texts, batch_size=4), fp32.embed_documents(texts, batch_size=4)
    assert np.abs(got - expected).max() < 1e-5


def test_names_and_dims_identify_the_vectors(fp32: Embedder, int8: Embedder) -> None:
    assert isinstance(fp32, Embedder) and isinstance(int8, Embedder)
    assert (fp32.name, fp32.dim) == ("all-MiniLM-L6-v2/onnx-fp32", 384)
    assert (int8.name, int8.dim) == ("all-MiniLM-L6-v2/onnx-int8-dynamic", 384)
    assert DEFAULT_EMBEDDER == "minilm"
    assert (model_name("minilm"), model_name("minilm-fp32")) == (int8.name, fp32.name)
    assert sorted(available_embedders()) == ["minilm", "minilm-fp32"]


def test_shipped_tokenizer_truncates_at_256_tokens() -> None:
    spec = json.loads(locate_minilm().tokenizer.read_text(encoding="utf-8"))
    assert spec["truncation"]["max_length"] == MAX_TOKENS
    assert spec["padding"] is None


def test_batches_are_capped_by_padded_tokens() -> None:
    lengths = [10] * 100 + [MAX_TOKENS] * 40
    order = list(range(len(lengths)))
    batches = _token_budget_batches(order, lengths, 64)
    assert [r for b in batches for r in b] == order
    assert all(len(b) * max(lengths[r] for r in b) <= MAX_BATCH_TOKENS for b in batches)
    assert max(len(b) for b in batches) == 64  # short texts still batch widely
    assert _token_budget_batches([0], [10 * MAX_BATCH_TOKENS], 8) == [[0]]  # an oversized one goes alone


def test_documents_are_float32_unit_rows(fp32: Embedder) -> None:
    texts = [URLLIB_CODE, SORT_CODE, "x"]
    vectors = fp32.embed_documents(texts)
    assert vectors.shape == (3, fp32.dim)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_query_is_a_float32_unit_vector_equal_to_its_document_embedding(fp32: Embedder) -> None:
    query = fp32.embed_query("open a url with timeout")
    assert query.shape == (fp32.dim,)
    assert query.dtype == np.float32
    assert abs(float(np.linalg.norm(query)) - 1.0) < 1e-5
    assert cosines(query, REF_VECTORS["short_query"]) >= 0.9999


def test_empty_input_gives_empty_matrix_without_progress(fp32: Embedder) -> None:
    calls: list[int] = []
    out = fp32.embed_documents([], progress=calls.append)
    assert out.shape == (0, fp32.dim)
    assert out.dtype == np.float32
    assert calls == []


def test_length_sorted_batching_keeps_caller_order(fp32: Embedder) -> None:
    # Deliberately not in length order, and batches smaller than the input, so rows move.
    texts = [SORT_CODE, "a", URLLIB_CODE * 3, "sort a list", REF_INPUTS["docstring"], "", "url"]
    assert [len(t) for t in texts] != sorted(len(t) for t in texts)
    calls: list[int] = []
    batched = fp32.embed_documents(texts, batch_size=3, progress=calls.append)
    alone = np.stack([fp32.embed_query(t) for t in texts])
    assert cosines(batched, alone).min() >= 0.99999
    assert sum(calls) == len(texts) and max(calls) <= 3  # batches also end where lengths jump


def test_order_is_kept_across_sort_windows(fp32: Embedder) -> None:
    # batch_size 1 sorts within windows of SORT_WINDOW_BATCHES texts: span three windows.
    count = 2 * SORT_WINDOW_BATCHES + 5
    texts = [f"value_{i} = compute({i})" + " + x" * ((i * 7) % 11) for i in range(count)]
    calls: list[int] = []
    batched = fp32.embed_documents(texts, batch_size=1, progress=calls.append)
    alone = np.stack([fp32.embed_query(t) for t in texts])
    assert cosines(batched, alone).min() >= 0.99999
    assert calls == [1] * count


def test_truncation_is_at_256_tokens_not_the_tokenizer_files_128(fp32: Embedder) -> None:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(locate_minilm().tokenizer))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    text = REF_INPUTS["long_over_256_tokens"]
    encoding = tokenizer.encode(text)
    assert len(encoding.ids) > 300

    def prefix(tokens_with_specials: int) -> str:
        # offsets of the last content token kept ([CLS] is at index 0).
        return text[: encoding.offsets[tokens_with_specials - 2][1]]

    full, at_256, at_200 = fp32.embed_documents([text, prefix(MAX_TOKENS), prefix(200)])
    assert len(tokenizer.encode(prefix(MAX_TOKENS)).ids) == MAX_TOKENS
    assert cosines(full, at_256) >= 0.99999  # everything past 256 tokens is dropped...
    assert cosines(full, at_200) < 0.9999  # ...but tokens 200-256 still count


def test_semantic_sanity(fp32: Embedder) -> None:
    query = fp32.embed_query("open a url with timeout")
    urllib_vec, sort_vec = fp32.embed_documents([URLLIB_CODE, SORT_CODE])
    assert float(query @ urllib_vec) > float(query @ sort_vec) + 0.1


def test_concurrent_threads_get_the_same_vectors(fp32: Embedder) -> None:
    texts = [URLLIB_CODE, SORT_CODE, REF_INPUTS["docstring"], REF_INPUTS["unicode"]]
    expected = fp32.embed_documents(texts)
    results: list[np.ndarray] = []

    def work() -> None:
        for _ in range(3):
            results.append(fp32.embed_documents(texts, batch_size=2))

    errors = run_in_threads(work, 4)
    assert errors == []
    assert len(results) == 12
    for got in results:
        assert np.abs(got - expected).max() < 1e-5


@settings(max_examples=25, deadline=None)
@given(st.lists(st.text(max_size=200), min_size=1, max_size=5))
def test_any_unicode_gives_finite_unit_rows(fp32: Embedder, texts: list[str]) -> None:
    vectors = fp32.embed_documents(texts, batch_size=2)
    assert vectors.shape == (len(texts), 384)
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_hand_parsed_safetensors_match_the_safetensors_package() -> None:
    from safetensors.numpy import load_file

    path = locate_minilm().weights
    ours = read_safetensors(path)
    theirs = load_file(str(path))
    assert ours.keys() == theirs.keys()
    for name, array in theirs.items():
        assert ours[name].dtype == array.dtype, name
        np.testing.assert_array_equal(ours[name], array, err_msg=name)


def test_truncated_safetensors_is_rejected(tmp_path: Path) -> None:
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    path = tmp_path / "broken.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 8)
    with pytest.raises(ValueError, match="bad data offsets"):
        read_safetensors(path)


def test_missing_model_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules is how Python itself marks a module as unimportable.
    monkeypatch.setitem(sys.modules, "cidx_model_minilm", None)
    assert available_embedders() == []
    with pytest.raises(EmbedderError) as info:
        load_embedder("minilm")
    message = str(info.value)
    assert "\n" not in message
    assert "cidx-model-minilm" in message
    assert "python3 build.py install" in message


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(EmbedderError, match="minilm"):
        load_embedder("nope")


def test_runtime_never_imports_torch_or_hub_or_the_model_packages() -> None:
    code = (
        "import sys\n"
        "from cidx_daemon.search.embedding import load_embedder\n"
        "for name in ('minilm', 'minilm-fp32'):\n"
        "    e = load_embedder(name)\n"
        "    e.embed_documents(['def f(): pass', 'x']); e.embed_query('q')\n"
        "banned = ('torch', 'huggingface_hub', 'sentence_transformers', 'transformers',\n"
        "          'cidx_model_minilm')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in banned))\n"
        "print('onnxruntime' in sys.modules)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT / "daemon_pkg/src"))
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, timeout=300
    )
    assert result.stdout.split("\n")[:2] == ["[]", "True"]
