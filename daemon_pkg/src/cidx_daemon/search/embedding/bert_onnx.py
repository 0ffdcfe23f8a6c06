"""Building an fp32 ONNX graph of a BERT encoder from its safetensors weights, in memory.

No fp32 ONNX export of all-MiniLM-L6-v2 is published as a package, and
exporting one needs torch. The architecture is small and fixed, so the graph
is written out op by op with the `onnx` helpers at load time and handed to
onnxruntime from memory: nothing is written to disk or downloaded.

The weights never enter the protobuf: large tensors are declared as external
data and passed to onnxruntime as arrays (`SessionOptions.add_external_initializers`),
which skips three 90 MB protobuf copies and halves the load time.

The graph takes ``input_ids`` and ``attention_mask`` (int64, ``[batch, seq]``)
and returns ``last_hidden_state`` (float32, ``[batch, seq, hidden]``); pooling
stays outside so the same code pools any BERT-shaped model (e.g. the int8 one).
Token types are always 0 for single texts, so the type-0 embedding row is a
constant rather than an input.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: LayerNormalization is a standard op from opset 17 on; onnxruntime >= 1.16 runs it.
OPSET = 17
#: onnxruntime's contrib-op domain (the fused Attention op).
_CONTRIB = "com.microsoft"
_QKV = ("query", "key", "value")

_SAFETENSORS_DTYPES: dict[str, np.dtype] = {
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "F64": np.dtype("<f8"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
}


@dataclass(frozen=True)
class BertConfig:
    """The hyper-parameters the graph depends on (from HF ``config.json``)."""

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    layer_norm_eps: float
    max_position_embeddings: int

    @classmethod
    def from_file(cls, path: Path) -> BertConfig:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"unsupported hidden_act {raw['hidden_act']!r} in {path}")
        if raw.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"unsupported position_embedding_type in {path}")
        return cls(
            hidden_size=int(raw["hidden_size"]),
            num_hidden_layers=int(raw["num_hidden_layers"]),
            num_attention_heads=int(raw["num_attention_heads"]),
            intermediate_size=int(raw["intermediate_size"]),
            layer_norm_eps=float(raw["layer_norm_eps"]),
            max_position_embeddings=int(raw["max_position_embeddings"]),
        )


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Parse a safetensors file (u64 LE header size, JSON header, raw little-endian data).

    Hand-parsed so the daemon needs no `safetensors` dependency; the arrays are
    read-only views into one buffer read from disk.
    """
    data = path.read_bytes()
    if len(data) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (header_len,) = struct.unpack("<Q", data[:8])
    start = 8 + header_len
    if start > len(data):
        raise ValueError(f"{path}: header length {header_len} exceeds file size")
    header = json.loads(data[8:start])
    tensors: dict[str, np.ndarray] = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        dtype = _SAFETENSORS_DTYPES.get(meta["dtype"])
        if dtype is None:
            raise ValueError(f"{path}: unsupported dtype {meta['dtype']} for {name}")
        begin, end = meta["data_offsets"]
        shape = tuple(meta["shape"])
        count = math.prod(shape)
        if (end - begin) != count * dtype.itemsize or start + end > len(data):
            raise ValueError(f"{path}: bad data offsets for {name}")
        array = np.frombuffer(data, dtype=dtype, count=count, offset=start + begin)
        tensors[name] = array.reshape(shape)
    return tensors


#: Tensors at least this large are passed to onnxruntime as arrays, not inside the
#: protobuf. Small ones (shapes, scalars) stay inline: shape inference reads them.
EXTERNAL_MIN_BYTES = 1024
_EXTERNAL_LOCATION = "cidx-in-memory"


@dataclass(frozen=True)
class BertGraph:
    """A serialized ONNX model whose large initializers are external, plus their values."""

    model: bytes
    external: dict[str, np.ndarray]


class _GraphBuilder:
    """Accumulates nodes and initializers with unique names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self.external: dict[str, np.ndarray] = {}
        self._count = 0

    def const(self, name: str, value: np.ndarray) -> str:
        value = np.ascontiguousarray(value)
        if value.nbytes < EXTERNAL_MIN_BYTES:
            self.initializers.append(numpy_helper.from_array(value, name))
            return name
        tensor = TensorProto(
            name=name,
            dims=value.shape,
            data_type=helper.np_dtype_to_tensor_dtype(value.dtype),
            data_location=TensorProto.EXTERNAL,
        )
        entry = tensor.external_data.add()
        entry.key, entry.value = "location", _EXTERNAL_LOCATION
        self.initializers.append(tensor)
        self.external[name] = value
        return name

    def op(self, op_type: str, inputs: list[str], output: str | None = None, **attrs: object) -> str:
        self._count += 1
        out = output or f"{op_type.lower()}_{self._count}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=f"n{self._count}", **attrs))
        return out


def _linear(g: _GraphBuilder, x: str, weights: dict[str, np.ndarray], prefix: str) -> str:
    """``x @ W.T + b`` for a torch Linear stored as ``[out, in]``."""
    w = g.const(f"{prefix}.weight_t", np.asarray(weights[f"{prefix}.weight"], np.float32).T)
    b = g.const(f"{prefix}.bias", np.asarray(weights[f"{prefix}.bias"], np.float32))
    return g.op("Add", [g.op("MatMul", [x, w]), b])


def _layer_norm(g: _GraphBuilder, x: str, weights: dict[str, np.ndarray], prefix: str, eps: float) -> str:
    scale = g.const(f"{prefix}.weight", np.asarray(weights[f"{prefix}.weight"], np.float32))
    bias = g.const(f"{prefix}.bias", np.asarray(weights[f"{prefix}.bias"], np.float32))
    return g.op("LayerNormalization", [x, scale, bias], axis=-1, epsilon=eps)


def _gelu_erf(g: _GraphBuilder, x: str) -> str:
    """Exact GELU, ``0.5 * x * (1 + erf(x / sqrt 2))``, in the pattern ORT fuses into one op."""
    scaled = g.op("Div", [x, "c_sqrt2"])
    one_plus = g.op("Add", [g.op("Erf", [scaled]), "c_one"])
    return g.op("Mul", [g.op("Mul", [x, one_plus]), "c_half"])


def _attention_plain(
    g: _GraphBuilder, x: str, mask_bias: str, weights: dict[str, np.ndarray], prefix: str, cfg: BertConfig
) -> str:
    """Self-attention in standard ops; ``mask_bias`` is the additive [batch, 1, 1, seq] mask."""
    heads = cfg.num_attention_heads
    head_dim = cfg.hidden_size // heads
    split_shape = g.const(f"{prefix}.split_shape", np.array([0, 0, heads, head_dim], np.int64))

    def split_heads(t: str, perm: list[int]) -> str:
        return g.op("Transpose", [g.op("Reshape", [t, split_shape])], perm=perm)

    q = split_heads(_linear(g, x, weights, f"{prefix}.self.query"), [0, 2, 1, 3])  # B,h,S,d
    k = split_heads(_linear(g, x, weights, f"{prefix}.self.key"), [0, 2, 3, 1])  # B,h,d,S
    v = split_heads(_linear(g, x, weights, f"{prefix}.self.value"), [0, 2, 1, 3])  # B,h,S,d
    scale = g.const(f"{prefix}.scale", np.array(1.0 / math.sqrt(head_dim), np.float32))
    scores = g.op("Add", [g.op("Mul", [g.op("MatMul", [q, k]), scale]), mask_bias])
    probs = g.op("Softmax", [scores], axis=-1)
    context = g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])  # B,S,h,d
    return g.op("Reshape", [context, "c_merge_shape"])


def _attention_fused(
    g: _GraphBuilder, x: str, mask: str, weights: dict[str, np.ndarray], prefix: str, cfg: BertConfig
) -> str:
    """Self-attention as onnxruntime's fused ``com.microsoft.Attention`` op (Q, K and V in one
    GEMM, heads split, masked softmax and context in one kernel); ``mask`` is the raw int32 mask.

    Not the default: it gives the same vectors (fp32: max difference < 1e-5; int8: bit-identical,
    the quantizer turning it into ``QAttention``) but no clear speed-up. bench/embed_speed.py
    --fused-attention, 10 interleaved rounds on an AVX2-only EPYC (2026-12-06): int8 44.0 ->
    45.9, fp32 29.8 -> 30.1 chunks/s, within the run's spread; on an AVX-512 VNNI host
    (2026-12-03) the quantized op was slower (112 vs 120 chunks/s).
    """
    weight = g.const(f"{prefix}.self.qkv_weight_t", np.concatenate(
        [np.asarray(weights[f"{prefix}.self.{n}.weight"], np.float32).T for n in _QKV], axis=1))
    bias = g.const(f"{prefix}.self.qkv_bias", np.concatenate(
        [np.asarray(weights[f"{prefix}.self.{n}.bias"], np.float32) for n in _QKV]))
    return g.op("Attention", [x, weight, bias, mask], domain=_CONTRIB, num_heads=cfg.num_attention_heads)


def _encoder_layer(
    g: _GraphBuilder, x: str, mask: str, weights: dict[str, np.ndarray], i: int, cfg: BertConfig, fused: bool
) -> str:
    prefix = f"encoder.layer.{i}"
    attention = _attention_fused if fused else _attention_plain
    context = attention(g, x, mask, weights, f"{prefix}.attention", cfg)
    projected = _linear(g, context, weights, f"{prefix}.attention.output.dense")
    attended = _layer_norm(g, g.op("Add", [projected, x]), weights, f"{prefix}.attention.output.LayerNorm",
                           cfg.layer_norm_eps)
    inner = _gelu_erf(g, _linear(g, attended, weights, f"{prefix}.intermediate.dense"))
    out = _linear(g, inner, weights, f"{prefix}.output.dense")
    return _layer_norm(
        g, g.op("Add", [out, attended]), weights, f"{prefix}.output.LayerNorm", cfg.layer_norm_eps
    )


def _strip_prefix(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Accept both ``embeddings.*`` and ``bert.embeddings.*`` checkpoints."""
    if "embeddings.word_embeddings.weight" in weights:
        return weights
    return {k.removeprefix("bert."): v for k, v in weights.items()}


def build_bert_graph(
    weights: dict[str, np.ndarray], cfg: BertConfig, fused_attention: bool = False
) -> BertGraph:
    """The encoder as an ONNX model: ids + mask in, last hidden state out. ``fused_attention``
    writes attention as onnxruntime's fused op instead of standard ops (same vectors)."""
    weights = _strip_prefix(weights)
    g = _GraphBuilder()
    hidden = cfg.hidden_size
    g.const("c_sqrt2", np.array(math.sqrt(2.0), np.float32))
    g.const("c_one", np.array(1.0, np.float32))
    g.const("c_half", np.array(0.5, np.float32))
    g.const("c_merge_shape", np.array([0, 0, hidden], np.int64))

    # Embeddings: word[ids] + position[0:seq] + token_type[0], then LayerNorm.
    word = g.const("word_embeddings", np.asarray(weights["embeddings.word_embeddings.weight"], np.float32))
    position = g.const(
        "position_embeddings", np.asarray(weights["embeddings.position_embeddings.weight"], np.float32)
    )
    token_type0 = g.const(
        "token_type_embedding0",
        np.asarray(weights["embeddings.token_type_embeddings.weight"][0], np.float32),
    )
    seq_len = g.op(
        "Gather", [g.op("Shape", ["input_ids"]), g.const("c_index1", np.array([1], np.int64))], axis=0
    )
    positions = g.op("Slice", [position, g.const("c_zero1", np.array([0], np.int64)), seq_len])
    embedded = g.op("Add", [g.op("Add", [g.op("Gather", [word, "input_ids"]), positions]), token_type0])
    x = _layer_norm(g, embedded, weights, "embeddings.LayerNorm", cfg.layer_norm_eps)

    if fused_attention:  # the Attention op takes the raw 1/0 mask ([batch, seq], int32)
        mask = g.op("Cast", ["attention_mask"], to=TensorProto.INT32)
    else:  # additive mask [batch, 1, 1, seq]: 0 where attended, float32 min where padding (as HF does)
        inverted = g.op("Sub", ["c_one", g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)])
        bias = g.op("Mul", [inverted, g.const("c_mask_min", np.array(np.finfo(np.float32).min, np.float32))])
        mask = g.op("Unsqueeze", [bias, g.const("c_axes12", np.array([1, 2], np.int64))])

    for i in range(cfg.num_hidden_layers):
        x = _encoder_layer(g, x, mask, weights, i, cfg, fused_attention)
    g.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="output"))

    graph = helper.make_graph(
        g.nodes,
        "bert_encoder",
        inputs=[
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
        ],
        outputs=[
            helper.make_tensor_value_info(
                "last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", hidden]
            )
        ],
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(_CONTRIB, 1)],
        producer_name="cidx_daemon.bert_onnx"
    )
    model.ir_version = 8  # the highest IR onnxruntime >= 1.16 accepts with opset 17
    return BertGraph(model.SerializeToString(), g.external)


def build_bert_onnx(weights_path: Path, config_path: Path, fused_attention: bool = False) -> BertGraph:
    """The fp32 ONNX encoder of a safetensors checkpoint and its HF config.json."""
    config = BertConfig.from_file(config_path)
    return build_bert_graph(read_safetensors(weights_path), config, fused_attention)
