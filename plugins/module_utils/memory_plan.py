"""Plan vLLM's GPU/CPU memory before the server starts, from config.json alone.

vLLM dies at start-up (under systemd: a unit in a restart loop) when the KV
cache left after the weights cannot hold one sequence of ``max_model_len``
tokens. Everything here mirrors what vLLM 0.32 computes at start-up
(``vllm/v1/core/kv_cache_utils.py``, ``vllm/v1/worker/gpu_worker.py``,
``vllm/config/model.py``) so the failure is reported before anything starts,
with the value of each ``vllm_*`` variable that would fit.

Pure Python, no Ansible imports, so it is unit-tested directly and shared by
the ``vllm_memory_plan`` module.
"""

from __future__ import annotations

import glob
import json
import math
import os
import struct
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Dict, List, Optional, Tuple, Union

MiB = 1024 ** 2
GiB = 1024 ** 3

# Activations of the profiling pass, CUDA graphs (vLLM 0.32 subtracts their
# estimate from the KV budget by default) and non-torch allocations (cuBLAS
# workspaces, attention buffers). 1 GiB covers a 1.5B-8B model at the default
# max_num_batched_tokens; docs/memory-planner.md explains when to raise it.
DEFAULT_RESERVE_MIB = 1024
# Above this vLLM leaves too little for the CUDA context and other processes.
DEFAULT_MAX_GPU_MEMORY_UTILIZATION = 0.95
# Auto mode refuses to pick a context shorter than this (or the model's own).
DEFAULT_AUTO_MIN_MODEL_LEN = 2048
# vLLM's CacheConfig.DEFAULT_BLOCK_SIZE on CUDA; the CPU platform switches to
# 128 unless the model uses MLA (its CPU kernel only compiles with 16).
CUDA_BLOCK_SIZE = 16
CPU_BLOCK_SIZE = 128
CPU_MLA_BLOCK_SIZE = 16
# vLLM's fallback when config.json names no length at all.
DEFAULT_MODEL_LEN = 2048

DTYPE_BYTES: Dict[str, int] = {
    "float16": 2,
    "half": 2,
    "bfloat16": 2,
    "float32": 4,
    "float": 4,
}
DTYPES: Tuple[str, ...] = ("auto",) + tuple(DTYPE_BYTES)
KV_CACHE_DTYPE_BYTES: Dict[str, int] = {"fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1}
KV_CACHE_DTYPES: Tuple[str, ...] = ("auto",) + tuple(KV_CACHE_DTYPE_BYTES)
DEVICES: Tuple[str, ...] = ("cuda", "cpu")
MODES: Tuple[str, ...] = ("check", "auto", "report")
VERDICTS: Tuple[str, ...] = ("ok", "does_not_fit", "weights_do_not_fit", "exceeds_model_limit")

# Bytes per element of the safetensors dtypes; floats are recast to the
# serving dtype when loaded, the others (quantized packs, fp8) are kept as is.
SAFETENSORS_FLOAT_BYTES: Dict[str, int] = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}
SAFETENSORS_OTHER_BYTES: Dict[str, float] = {
    "I8": 1, "U8": 1, "BOOL": 1, "I16": 2, "U16": 2, "I32": 4, "U32": 4,
    "I64": 8, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "F4": 0.5,
}
# A safetensors header is JSON of a few MB at most; refuse nonsense lengths.
MAX_SAFETENSORS_HEADER = 256 * MiB

# Sub-configs that hold the language model of a multimodal config.
TEXT_CONFIG_KEYS: Tuple[str, ...] = ("text_config", "llm_config", "language_config")
# vLLM's ModelArchConfigConvertor.derive_max_model_len_and_key, in order.
MAX_LEN_KEYS: Tuple[str, ...] = (
    "max_position_embeddings",
    "n_positions",
    "max_seq_len",
    "seq_length",
    "model_max_length",
    "max_target_positions",
    "max_sequence_length",
    "max_seq_length",
    "seq_len",
)
# RoPE types whose max_position_embeddings already includes the scaling.
ROPE_PRESCALED = ("su", "longrope", "llama3", "yarn", "deepseek_yarn", "deepseek_llama_scaling")
FALCON_TYPES = ("falcon", "RefinedWeb", "RefinedWebModel")
KV_HEAD_KEYS = ("n_head_kv", "num_kv_heads", "num_key_value_heads", "multi_query_group_num",
                "num_attention_groups")
# Model types whose MLP is up/down only (no gate projection).
NON_GATED_MLP = ("gpt2", "gpt_bigcode", "gpt_neo", "gpt_neox", "gptj", "falcon", "opt", "bloom",
                 "phi", "mpt", "starcoder2", "RefinedWeb", "RefinedWebModel")
QKV_BIAS_TYPES = ("qwen2", "qwen2_moe", "qwen2_vl", "qwen2_5_vl", "qwen2_audio")
LEARNED_POSITION_TYPES = ("gpt2", "gpt_bigcode", "gpt_neo", "opt")
EXPERT_KEYS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")
TP_CANDIDATES = (1, 2, 4, 8, 16, 32, 64)


# --------------------------------------------------------------------------- #
# Weights on disk
# --------------------------------------------------------------------------- #

@dataclass(frozen=True)
class WeightFiles:
    """What the safetensors of a model directory hold.

    ``float_params`` are recast to the serving dtype on load, ``fixed_bytes``
    (quantized packs, fp8, integer tensors) are loaded as stored.
    """

    stored_bytes: int
    float_params: int
    fixed_bytes: int
    files: Tuple[str, ...]
    source: str

    def runtime_bytes(self, dtype_bytes: int) -> int:
        return self.float_params * dtype_bytes + self.fixed_bytes


def read_safetensors_header(path: str) -> Dict[str, Any]:
    """The JSON header of one safetensors file, without reading its tensors.

    Layout: 8-byte little-endian header length, then that many bytes of JSON.
    """
    with open(path, "rb") as handle:
        raw = handle.read(8)
        if len(raw) != 8:
            raise ValueError(f"{path} is not a safetensors file: shorter than 8 bytes")
        (length,) = struct.unpack("<Q", raw)
        if length <= 0 or length > MAX_SAFETENSORS_HEADER:
            raise ValueError(f"{path} is not a safetensors file: header length {length}")
        header = handle.read(length)
    if len(header) != length:
        raise ValueError(f"{path} is truncated: header needs {length} bytes, got {len(header)}")
    try:
        parsed = json.loads(header.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path} has an unreadable safetensors header: {exc}") from exc
    if not isinstance(parsed, dict):
        raise ValueError(f"{path} has a safetensors header that is not a JSON object")
    return parsed


def _tensor_bytes(name: str, info: Dict[str, Any], path: str) -> Tuple[str, int, int]:
    """(dtype, elements, bytes) of one header entry."""
    dtype = str(info.get("dtype", ""))
    shape = info.get("shape") or []
    elements = 1
    for dim in shape:
        elements *= int(dim)
    offsets = info.get("data_offsets")
    if isinstance(offsets, (list, tuple)) and len(offsets) == 2:
        size = int(offsets[1]) - int(offsets[0])
    elif dtype in SAFETENSORS_FLOAT_BYTES:
        size = elements * SAFETENSORS_FLOAT_BYTES[dtype]
    elif dtype in SAFETENSORS_OTHER_BYTES:
        size = int(math.ceil(elements * SAFETENSORS_OTHER_BYTES[dtype]))
    else:
        raise ValueError(f"{path}: tensor {name} has unknown dtype {dtype!r} and no data_offsets")
    if size < 0:
        raise ValueError(f"{path}: tensor {name} has negative data_offsets")
    return dtype, elements, size


def _weight_file_list(model_dir: str) -> Tuple[List[str], Optional[Dict[str, Any]]]:
    """The safetensors vLLM would load, and the index when there is one.

    With an index only the files it maps are loaded: Mistral repositories ship
    consolidated.safetensors next to the sharded copy, counting both would
    double the weights.
    """
    index_path = os.path.join(model_dir, "model.safetensors.index.json")
    index: Optional[Dict[str, Any]] = None
    if os.path.isfile(index_path):
        with open(index_path, encoding="utf-8") as handle:
            index = json.load(handle)
        weight_map = (index or {}).get("weight_map") or {}
        names = sorted(set(str(v) for v in weight_map.values()))
        return [os.path.join(model_dir, n) for n in names], index
    files = sorted(glob.glob(os.path.join(model_dir, "*.safetensors")))
    sharded = [f for f in files if not os.path.basename(f).startswith("consolidated")]
    return (sharded or files), None


def read_weight_files(model_dir: str) -> Optional[WeightFiles]:
    """Sum the tensors of a model directory's safetensors from their headers.

    Falls back to ``metadata.total_size`` of model.safetensors.index.json when
    the shards are not all there; None when neither exists (then the caller
    estimates from config.json).
    """
    files, index = _weight_file_list(model_dir)
    present = [f for f in files if os.path.isfile(f)]
    if files and len(present) == len(files):
        stored = float_params = fixed = 0
        for path in present:
            for name, info in read_safetensors_header(path).items():
                if name == "__metadata__" or not isinstance(info, dict):
                    continue
                dtype, elements, size = _tensor_bytes(name, info, path)
                stored += size
                if dtype in SAFETENSORS_FLOAT_BYTES:
                    float_params += elements
                else:
                    fixed += size
        return WeightFiles(stored, float_params, fixed, tuple(os.path.basename(f) for f in present),
                           "safetensors headers")
    total = ((index or {}).get("metadata") or {}).get("total_size")
    if total:
        return WeightFiles(int(total), 0, 0, (), "model.safetensors.index.json metadata.total_size")
    return None


def weight_bytes_from_dir(model_dir: str) -> Optional[int]:
    """Bytes of weights stored in a model directory's safetensors, or None."""
    found = read_weight_files(model_dir)
    return found.stored_bytes if found else None


# --------------------------------------------------------------------------- #
# Model shape from config.json
# --------------------------------------------------------------------------- #

def _first(cfg: Dict[str, Any], keys: Tuple[str, ...], default: Any = None) -> Any:
    for key in keys:
        value = cfg.get(key)
        if value is not None:
            return value
    return default


def text_config(config: Dict[str, Any]) -> Dict[str, Any]:
    """The language-model part of a config, top-level keys as fallback.

    Multimodal configs nest it (``text_config``); dtype and tying often stay
    at the top level, hence the merge.
    """
    for key in TEXT_CONFIG_KEYS:
        sub = config.get(key)
        if isinstance(sub, dict) and sub:
            merged = {k: v for k, v in config.items() if k not in TEXT_CONFIG_KEYS}
            merged.update({k: v for k, v in sub.items() if v is not None})
            return merged
    return dict(config)


def _rope_parameter_sets(cfg: Dict[str, Any]) -> List[Dict[str, Any]]:
    """RoPE settings as a list: transformers 5 nests them per layer type."""
    rope = cfg.get("rope_parameters")
    if not isinstance(rope, dict):
        rope = cfg.get("rope_scaling")
    if not isinstance(rope, dict) or not rope:
        return []
    if all(isinstance(v, dict) for v in rope.values()):
        return [dict(v) for v in rope.values()]
    return [dict(rope)]


@dataclass(frozen=True)
class ModelShape:
    """The figures of a config that decide weights and KV cache size."""

    model_type: str
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    intermediate_size: int
    tie_word_embeddings: bool
    config_dtype: Optional[str]
    model_max_len: int
    model_max_len_source: str
    mla: bool
    sliding_window: Optional[int]
    notes: Tuple[str, ...] = ()

    @property
    def attention(self) -> str:
        if self.mla:
            return "mla"
        if self.num_kv_heads == 1 and self.num_heads > 1:
            return "mqa"
        if self.num_kv_heads < self.num_heads:
            return "gqa"
        return "mha"


def _int(cfg: Dict[str, Any], keys: Tuple[str, ...], what: str, default: Optional[int] = None) -> int:
    value = _first(cfg, keys, default)
    if value is None:
        raise ValueError(f"config.json names no {what} (looked for {', '.join(keys)})")
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"config.json {what} is not a number: {value!r}") from exc
    if number <= 0:
        raise ValueError(f"config.json {what} must be positive, got {number}")
    return number


def is_mla(cfg: Dict[str, Any]) -> bool:
    """DeepSeek-V2/V3-style latent attention (one compressed KV vector)."""
    return cfg.get("kv_lora_rank") is not None and cfg.get("qk_rope_head_dim") is not None


def _num_kv_heads(cfg: Dict[str, Any], num_heads: int) -> int:
    """Follows vLLM's get_total_num_kv_heads (Falcon, GPTBigCode, DBRX, GQA)."""
    model_type = str(cfg.get("model_type", ""))
    new_falcon = model_type in FALCON_TYPES and cfg.get("new_decoder_architecture", False)
    if not new_falcon and cfg.get("multi_query", False):
        return 1
    attn = cfg.get("attn_config")
    if isinstance(attn, dict) and attn.get("kv_n_heads"):
        return int(attn["kv_n_heads"])
    value = _first(cfg, KV_HEAD_KEYS)
    return int(value) if value else num_heads


def _model_max_len(cfg: Dict[str, Any], tokenizer_config: Optional[Dict[str, Any]],
                   notes: List[str]) -> Tuple[int, str]:
    """The longest context vLLM accepts without VLLM_ALLOW_LONG_MAX_MODEL_LEN."""
    derived: Optional[float] = None
    source = ""
    for key in MAX_LEN_KEYS:
        value = cfg.get(key)
        if isinstance(value, (int, float)) and value > 0 and (derived is None or value < derived):
            derived, source = float(value), key
    # Command-R names its real limit model_max_length, above the others.
    if isinstance(cfg.get("model_max_length"), (int, float)) and cfg["model_max_length"] > 0:
        derived, source = float(cfg["model_max_length"]), "model_max_length"
    if tokenizer_config:
        tok_len = tokenizer_config.get("model_max_length")
        if isinstance(tok_len, (int, float)) and tok_len > 0 and (derived is None or tok_len < derived):
            derived, source = float(tok_len), "tokenizer_config.json model_max_length"
    if derived is None:
        notes.append(f"config.json names no context length; vLLM assumes {DEFAULT_MODEL_LEN}.")
        derived, source = float(DEFAULT_MODEL_LEN), "vLLM default"
    rope_sets = _rope_parameter_sets(cfg)
    if rope_sets and "gemma3" not in str(cfg.get("model_type", "")):
        factor = 1.0
        for rope in rope_sets:
            rope_type = rope.get("rope_type", rope.get("type", "default"))
            if rope_type not in ROPE_PRESCALED and rope.get("factor") is not None:
                factor = float(rope["factor"])
        if factor != 1.0:
            derived *= factor
            source += f" x rope factor {factor:g}"
    if any(r.get("rope_type", r.get("type")) == "longrope" for r in rope_sets):
        original = cfg.get("original_max_position_embeddings")
        if original:
            notes.append("LongRoPE: vLLM defaults to original_max_position_embeddings.")
            return int(original), "original_max_position_embeddings (longrope)"
    return int(derived), source


def _sliding_window(cfg: Dict[str, Any]) -> Optional[int]:
    if cfg.get("use_sliding_window") is False:
        return None
    window = cfg.get("sliding_window")
    if isinstance(window, int) and window > 0:
        return window
    return None


def model_shape(config: Dict[str, Any], tokenizer_config: Optional[Dict[str, Any]] = None) -> ModelShape:
    """Read the figures the planner needs, raising ValueError naming what is missing."""
    if not isinstance(config, dict):
        raise ValueError("config.json must hold a JSON object")
    cfg = text_config(config)
    notes: List[str] = []
    hidden = _int(cfg, ("hidden_size", "n_embd", "d_model", "model_dim", "dim"), "hidden size")
    layers = _int(cfg, ("num_hidden_layers", "n_layer", "num_layers", "n_layers"), "layer count")
    heads = _int(cfg, ("num_attention_heads", "n_head", "num_heads", "n_heads"), "attention head count")
    mla = is_mla(cfg)
    if mla:
        kv_heads = 1
        head_dim = int(cfg["kv_lora_rank"]) + int(cfg["qk_rope_head_dim"])
    else:
        kv_heads = _num_kv_heads(cfg, heads)
        explicit = cfg.get("head_dim") or cfg.get("hidden_size_per_head")
        head_dim = int(explicit) if explicit else hidden // heads
    vocab = _int(cfg, ("vocab_size", "padded_vocab_size"), "vocabulary size")
    inter = _first(cfg, ("intermediate_size", "n_inner", "ffn_hidden_size", "ffn_dim")) or 4 * hidden
    dtype = _first(cfg, ("torch_dtype", "dtype"))
    max_len, source = _model_max_len(cfg, tokenizer_config, notes)
    window = _sliding_window(cfg)
    layer_types = cfg.get("layer_types") or []
    if window and any("sliding" in str(t) for t in layer_types):
        notes.append(f"Some layers use a sliding window of {window} tokens.")
    elif window:
        notes.append(f"Sliding-window attention ({window} tokens).")
    if window:
        notes.append(
            "KV per token counts every layer for the whole context (vLLM's block size in bytes is "
            "the same for sliding-window layers); vLLM frees blocks that leave the window, so real "
            "capacity per request is larger and this plan is on the safe side."
        )
    if any(str(t) in ("linear_attention", "mamba", "conv") for t in layer_types):
        notes.append("Hybrid attention/state-space model: only approximated (all layers counted as attention).")
    if any(k in config for k in TEXT_CONFIG_KEYS):
        notes.append("Multimodal config: the language model's text_config is used.")
    return ModelShape(
        model_type=str(cfg.get("model_type", "")),
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        vocab_size=vocab,
        intermediate_size=int(inter),
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", _default_tie(cfg))),
        config_dtype=str(dtype) if dtype else None,
        model_max_len=max_len,
        model_max_len_source=source,
        mla=mla,
        sliding_window=window,
        notes=tuple(notes),
    )


def _default_tie(cfg: Dict[str, Any]) -> bool:
    """transformers' default for tie_word_embeddings when config.json omits it."""
    return str(cfg.get("model_type", "")) not in ("llama", "mistral", "mixtral", "qwen2", "qwen3")


# --------------------------------------------------------------------------- #
# Parameter estimate (used when no safetensors are readable)
# --------------------------------------------------------------------------- #

def _is_moe_layer(cfg: Dict[str, Any], index: int) -> bool:
    experts = _first(cfg, EXPERT_KEYS)
    if not experts:
        return False
    if index < int(cfg.get("first_k_dense_replace") or 0):
        return False
    if index in (cfg.get("mlp_only_layers") or []):
        return False
    step = int(cfg.get("decoder_sparse_step") or 1)
    if (index + 1) % step:
        return False
    freq = int(cfg.get("moe_layer_freq") or 1)
    return index % freq == 0


def _attention_params(cfg: Dict[str, Any], shape: ModelShape, tp: int) -> float:
    h = shape.hidden_size
    heads = shape.num_heads
    if shape.mla:
        rope = int(cfg["qk_rope_head_dim"])
        nope = int(cfg.get("qk_nope_head_dim") or 0)
        v_dim = int(cfg.get("v_head_dim") or nope)
        lora = int(cfg["kv_lora_rank"])
        q_lora = cfg.get("q_lora_rank")
        if q_lora:
            q = h * int(q_lora) + int(q_lora) + int(q_lora) * heads * (nope + rope) / tp
        else:
            q = h * heads * (nope + rope) / tp
        kv = h * (lora + rope) + lora + lora * heads * (nope + v_dim) / tp
        return q + kv + heads * v_dim * h / tp
    d = shape.head_dim
    kv_rank = max(1, shape.num_kv_heads // tp) if tp > 1 else shape.num_kv_heads
    params = h * heads * d / tp + 2 * h * kv_rank * d + heads * d * h / tp
    if cfg.get("attention_bias") or shape.model_type in QKV_BIAS_TYPES:
        params += heads * d / tp + 2 * kv_rank * d
    return params


def _mlp_params(cfg: Dict[str, Any], shape: ModelShape, index: int, tp: int) -> float:
    h = shape.hidden_size
    mats = 2 if shape.model_type in NON_GATED_MLP else 3
    if not _is_moe_layer(cfg, index):
        return mats * h * shape.intermediate_size / tp
    experts = int(_first(cfg, EXPERT_KEYS))
    expert_inter = int(cfg.get("moe_intermediate_size") or shape.intermediate_size)
    params = experts * mats * h * expert_inter / tp + h * experts  # experts + router
    shared = int(cfg.get("n_shared_experts") or cfg.get("num_shared_experts") or 0)
    params += shared * mats * h * expert_inter / tp
    shared_inter = int(cfg.get("shared_expert_intermediate_size") or 0)
    if shared_inter:
        params += mats * h * shared_inter / tp + h  # Qwen-MoE shared expert and its gate
    return params


def _linear_bytes(cfg: Dict[str, Any], dtype_bytes: int, notes: Optional[List[str]]) -> float:
    """Bytes per parameter of the linear layers of a quantized checkpoint."""
    quant = cfg.get("quantization_config")
    if not isinstance(quant, dict):
        return float(dtype_bytes)
    method = str(quant.get("quant_method", "")).lower()
    bits: Optional[float] = None
    if quant.get("bits"):
        bits = float(quant["bits"])
    elif quant.get("load_in_4bit"):
        bits = 4.0
    elif quant.get("load_in_8bit") or "fp8" in method:
        bits = 8.0
    else:
        for group in (quant.get("config_groups") or {}).values():
            weights = (group or {}).get("weights") or {}
            if weights.get("num_bits"):
                bits = float(weights["num_bits"])
                break
    if bits is None:
        return float(dtype_bytes)
    if notes is not None:
        notes.append(f"Quantized checkpoint ({method or 'unknown method'}): linear weights estimated at "
                     f"{bits:g} bits, scales not counted.")
    return bits / 8.0


def pp_partitions(num_layers: int, pp: int) -> List[int]:
    """Layers per pipeline stage, split the way vLLM's get_pp_indices does."""
    parts = [num_layers // pp] * pp
    for i in range(2, num_layers % pp + 2):
        parts[-i] += 1
    return parts


def estimate_parameters(config: Dict[str, Any]) -> int:
    """Total parameters of the language model, from config.json alone."""
    shape = model_shape(config)
    return int(round(sum(_stage_params(text_config(config), shape, 1, 1, 1.0, 1.0))))


def _stage_params(cfg: Dict[str, Any], shape: ModelShape, tp: int, pp: int,
                  linear_bytes: float, dtype_bytes: float) -> List[float]:
    """Bytes (parameters when both sizes are 1.0) on one GPU of each PP stage."""
    h = shape.hidden_size
    embed = shape.vocab_size * h / tp
    if shape.model_type in LEARNED_POSITION_TYPES:
        embed += _first(cfg, ("n_positions", "max_position_embeddings"), 0) * h
    head = 0.0 if (shape.tie_word_embeddings and pp == 1) else shape.vocab_size * h / tp
    stages: List[float] = []
    start = 0
    for count in pp_partitions(shape.num_layers, pp):
        total = 0.0
        for index in range(start, start + count):
            linear = _attention_params(cfg, shape, tp) + _mlp_params(cfg, shape, index, tp)
            total += linear * linear_bytes + 2 * h * dtype_bytes
        stages.append(total)
        start += count
    stages[0] += embed * dtype_bytes
    stages[-1] += (head + h) * dtype_bytes
    return stages


# --------------------------------------------------------------------------- #
# The plan
# --------------------------------------------------------------------------- #

@dataclass
class MemoryPlan:
    """Every figure of a plan; ``as_dict`` is what the module returns."""

    device: str
    verdict: str
    message: str
    model_type: str
    attention: str
    parameter_count: int
    weights_source: str
    dtype: str
    dtype_bytes: int
    kv_cache_dtype: str
    kv_cache_dtype_bytes: int
    tensor_parallel_size: int
    pipeline_parallel_size: int
    num_layers: int
    layers_per_gpu: int
    num_kv_heads: int
    kv_heads_per_gpu: int
    head_dim: int
    sliding_window: Optional[int]
    model_max_len: int
    model_max_len_source: str
    max_model_len: int
    max_num_seqs: Optional[int]
    block_size: int
    gpu_memory_total_mib: Optional[int]
    gpu_memory_utilization: Optional[float]
    reserve_mib: Optional[int]
    cpu_kvcache_space_gib: Optional[float]
    requested_bytes: Optional[int]
    weight_bytes_per_gpu: int
    kv_bytes_per_token_per_gpu: int
    kv_budget_bytes: int
    kv_bytes_needed: int
    kv_cache_blocks: int
    kv_capacity_tokens: int
    max_concurrency: float
    max_full_sequences: int
    mode: str = "report"
    suggestions: Dict[str, Any] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)
    stages: List[Dict[str, int]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PlanInputs:
    """Everything a plan depends on besides the model; re-planned with replace()."""

    dtype: str = "auto"
    kv_cache_dtype: str = "auto"
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    device: str = "cuda"
    gpu_memory_total_mib: Optional[int] = None
    gpu_memory_utilization: float = 0.9
    max_model_len: Optional[int] = None
    max_num_seqs: Optional[int] = None
    reserve_mib: int = DEFAULT_RESERVE_MIB
    cpu_kvcache_space_gib: Optional[float] = None
    block_size: Optional[int] = None
    max_gpu_memory_utilization: float = DEFAULT_MAX_GPU_MEMORY_UTILIZATION


def gib(value: float) -> str:
    """Bytes for people: GiB, or MiB/KiB where GiB would print 0.00."""
    if abs(value) >= GiB / 100 or value == 0:
        return f"{value / GiB:.2f} GiB"
    if abs(value) >= MiB / 100:
        return f"{value / MiB:.2f} MiB"
    return f"{value / 1024:.2f} KiB"


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _friendly_floor(tokens: int, block_size: int) -> int:
    """Round a length down to a value people recognise (multiples of 1024)."""
    if tokens >= 1024:
        return tokens // 1024 * 1024
    return tokens // block_size * block_size


def resolve_dtype(dtype: str, shape: ModelShape, notes: List[str]) -> Tuple[str, int]:
    """The dtype vLLM serves in: 'auto' takes config.json's, float32 is downcast."""
    if dtype not in DTYPES:
        raise ValueError(f"vllm_dtype={dtype!r} is not one of {', '.join(DTYPES)}")
    if dtype != "auto":
        return dtype, DTYPE_BYTES[dtype]
    config_dtype = (shape.config_dtype or "").replace("torch.", "")
    if config_dtype in ("float16", "bfloat16"):
        return config_dtype, 2
    notes.append(f"config.json dtype {config_dtype or 'unset'}: vLLM's auto dtype serves it in 16 bits.")
    return "bfloat16", 2


def resolve_kv_cache_dtype(kv_cache_dtype: str, dtype_bytes: int) -> Tuple[str, int]:
    if kv_cache_dtype not in KV_CACHE_DTYPES:
        raise ValueError(f"vllm_kv_cache_dtype={kv_cache_dtype!r} is not one of {', '.join(KV_CACHE_DTYPES)}")
    if kv_cache_dtype == "auto":
        return "auto", dtype_bytes
    return kv_cache_dtype, KV_CACHE_DTYPE_BYTES[kv_cache_dtype]


def _validate(inputs: PlanInputs) -> None:
    if inputs.device not in DEVICES:
        raise ValueError(f"vllm_device={inputs.device!r} is not one of {', '.join(DEVICES)}")
    for name, value in (("vllm_tensor_parallel_size", inputs.tensor_parallel_size),
                        ("vllm_pipeline_parallel_size", inputs.pipeline_parallel_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be an integer of at least 1")
    if inputs.max_model_len is not None and (not isinstance(inputs.max_model_len, int)
                                             or inputs.max_model_len < 1):
        raise ValueError(f"vllm_max_model_len={inputs.max_model_len!r} must be a positive integer")
    if inputs.max_num_seqs is not None and (not isinstance(inputs.max_num_seqs, int)
                                            or inputs.max_num_seqs < 1):
        raise ValueError(f"vllm_max_num_seqs={inputs.max_num_seqs!r} must be a positive integer")
    if inputs.block_size is not None and inputs.block_size < 1:
        raise ValueError(f"block_size={inputs.block_size!r} must be a positive integer")
    if inputs.device == "cuda":
        if not inputs.gpu_memory_total_mib or inputs.gpu_memory_total_mib <= 0:
            raise ValueError("gpu_memory_total_mib is required for vllm_device=cuda (the memory of one GPU, "
                             "e.g. gpufleet_gpu.gpus[0].memory_total_mib)")
        if not 0 < inputs.gpu_memory_utilization <= 1:
            raise ValueError(f"vllm_gpu_memory_utilization={inputs.gpu_memory_utilization!r} must be in (0, 1]")
        if inputs.reserve_mib < 0:
            raise ValueError(f"reserve_mib={inputs.reserve_mib!r} must not be negative")
    elif not inputs.cpu_kvcache_space_gib or inputs.cpu_kvcache_space_gib <= 0:
        raise ValueError("vllm_cpu_kvcache_space_gib must be a positive number of GiB for "
                         f"vllm_device=cpu, got {inputs.cpu_kvcache_space_gib!r}")


class _Model:
    """A parsed model with its weights, planned against many inputs."""

    def __init__(self, config: Dict[str, Any], weights: Union[None, int, WeightFiles],
                 tokenizer_config: Optional[Dict[str, Any]]) -> None:
        self.config = config
        self.cfg = text_config(config)
        self.shape = model_shape(config, tokenizer_config)
        self.weights = weights

    def stage_weight_bytes(self, dtype_bytes: int, tp: int, pp: int, notes: List[str]) -> Tuple[List[int], str]:
        linear = _linear_bytes(self.cfg, dtype_bytes, notes)
        stages = _stage_params(self.cfg, self.shape, tp, pp, linear, dtype_bytes)
        if self.weights is None:
            notes.append("No safetensors found: weights estimated from config.json.")
            return [int(s) for s in stages], "estimate from config.json"
        whole = sum(_stage_params(self.cfg, self.shape, 1, 1, linear, dtype_bytes))
        if isinstance(self.weights, int):
            exact, source = self.weights, "given"
        elif self.weights.float_params or self.weights.fixed_bytes:
            exact, source = self.weights.runtime_bytes(dtype_bytes), self.weights.source
        else:
            # Only the index total: scale the stored dtype to the serving one.
            stored = DTYPE_BYTES.get((self.shape.config_dtype or "").replace("torch.", ""), dtype_bytes)
            exact = self.weights.stored_bytes * dtype_bytes // stored
            source = self.weights.source
        if tp == 1 and pp == 1:
            return [int(exact)], source
        # The estimate gives the split over GPUs; the files give the total.
        return [int(s / whole * exact) for s in stages], source


def _plan(model: _Model, inputs: PlanInputs) -> MemoryPlan:
    _validate(inputs)
    shape = model.shape
    notes: List[str] = list(shape.notes)
    tp, pp = inputs.tensor_parallel_size, inputs.pipeline_parallel_size
    dtype, dtype_bytes = resolve_dtype(inputs.dtype, shape, notes)
    kv_dtype, kv_bytes = resolve_kv_cache_dtype(inputs.kv_cache_dtype, dtype_bytes)
    if inputs.block_size:
        block_size = inputs.block_size
    elif inputs.device == "cpu":
        block_size = CPU_MLA_BLOCK_SIZE if shape.mla else CPU_BLOCK_SIZE
    else:
        block_size = CUDA_BLOCK_SIZE
    if shape.mla:
        kv_heads_gpu, factor = 1, 1  # one latent vector per token, replicated on every TP rank
    else:
        kv_heads_gpu, factor = max(1, shape.num_kv_heads // tp), 2
        if tp > shape.num_kv_heads:
            notes.append(f"vllm_tensor_parallel_size={tp} exceeds the {shape.num_kv_heads} KV heads: "
                         "each GPU keeps a full copy of one KV head.")
    if shape.num_heads % tp:
        notes.append(f"vLLM requires the {shape.num_heads} attention heads to divide by "
                     f"vllm_tensor_parallel_size={tp}.")
    max_len = inputs.max_model_len or shape.model_max_len
    seq_blocks = _cdiv(max_len, block_size)
    weights, source = model.stage_weight_bytes(dtype_bytes, tp, pp, notes)
    layers = pp_partitions(shape.num_layers, pp)
    requested: Optional[int] = None
    if inputs.device == "cuda":
        total = int(inputs.gpu_memory_total_mib or 0) * MiB
        # vLLM: requested_memory = ceil(total_memory * gpu_memory_utilization)
        requested = int(math.ceil(total * inputs.gpu_memory_utilization))
    stages: List[Dict[str, int]] = []
    for count, weight in zip(layers, weights):
        per_token = factor * count * kv_heads_gpu * shape.head_dim * kv_bytes
        if requested is not None:
            budget = requested - weight - inputs.reserve_mib * MiB
        else:
            budget = int((inputs.cpu_kvcache_space_gib or 0) * GiB)
        blocks = max(0, budget) // (block_size * per_token) if per_token else 0
        stages.append({"layers": count, "weight_bytes": weight, "kv_bytes_per_token": per_token,
                       "kv_budget_bytes": budget, "kv_cache_blocks": blocks})
    # Every stage allocates the same number of blocks: the smallest wins.
    binding = min(stages, key=lambda s: (s["kv_cache_blocks"], s["kv_budget_bytes"]))
    blocks = binding["kv_cache_blocks"]
    per_token = binding["kv_bytes_per_token"]
    # vLLM: int(num_blocks / blocks_per_request * max_model_len), as it logs it.
    capacity = int(blocks / seq_blocks * max_len) if blocks else 0
    concurrency = blocks / seq_blocks if blocks else 0.0
    # BlockPool holds one null block back for good.
    usable = max(0, blocks - 1)
    if requested is not None and any(s["kv_budget_bytes"] <= 0 for s in stages):
        verdict = "weights_do_not_fit"
    elif max_len > shape.model_max_len:
        verdict = "exceeds_model_limit"
    elif usable >= seq_blocks:
        verdict = "ok"
    else:
        verdict = "does_not_fit"
    if requested is None and float(inputs.cpu_kvcache_space_gib or 0) != int(inputs.cpu_kvcache_space_gib or 0):
        notes.append(f"vLLM 0.32 reads VLLM_CPU_KVCACHE_SPACE as whole GiB: vllm_cpu_kvcache_space_gib="
                     f"{inputs.cpu_kvcache_space_gib} would stop it at start; use an integer.")
    if inputs.max_num_seqs and verdict == "ok" and usable // seq_blocks < inputs.max_num_seqs:
        notes.append(f"At full length {usable // seq_blocks} of vllm_max_num_seqs={inputs.max_num_seqs} "
                     "sequences fit at once; vLLM queues or preempts the rest.")
    plan = MemoryPlan(
        device=inputs.device,
        verdict=verdict,
        message="",
        model_type=shape.model_type,
        attention=shape.attention,
        parameter_count=int(round(sum(_stage_params(model.cfg, shape, 1, 1, 1.0, 1.0)))),
        weights_source=source,
        dtype=dtype,
        dtype_bytes=dtype_bytes,
        kv_cache_dtype=kv_dtype,
        kv_cache_dtype_bytes=kv_bytes,
        tensor_parallel_size=tp,
        pipeline_parallel_size=pp,
        num_layers=shape.num_layers,
        layers_per_gpu=binding["layers"],
        num_kv_heads=shape.num_kv_heads,
        kv_heads_per_gpu=kv_heads_gpu,
        head_dim=shape.head_dim,
        sliding_window=shape.sliding_window,
        model_max_len=shape.model_max_len,
        model_max_len_source=shape.model_max_len_source,
        max_model_len=max_len,
        max_num_seqs=inputs.max_num_seqs,
        block_size=block_size,
        gpu_memory_total_mib=inputs.gpu_memory_total_mib if requested is not None else None,
        gpu_memory_utilization=inputs.gpu_memory_utilization if requested is not None else None,
        reserve_mib=inputs.reserve_mib if requested is not None else None,
        cpu_kvcache_space_gib=inputs.cpu_kvcache_space_gib if requested is None else None,
        requested_bytes=requested,
        weight_bytes_per_gpu=max(s["weight_bytes"] for s in stages),
        kv_bytes_per_token_per_gpu=max(s["kv_bytes_per_token"] for s in stages),
        kv_budget_bytes=binding["kv_budget_bytes"],
        kv_bytes_needed=seq_blocks * block_size * per_token,
        kv_cache_blocks=blocks,
        kv_capacity_tokens=capacity,
        max_concurrency=round(concurrency, 2),
        max_full_sequences=usable // seq_blocks,
        notes=notes,
        stages=stages if pp > 1 else [],
    )
    return plan


def _fits(model: _Model, inputs: PlanInputs) -> bool:
    return _plan(model, inputs).ok


def _largest_len(model: _Model, inputs: PlanInputs, sequences: int) -> int:
    """Largest max_model_len up to the model's limit for ``sequences`` full sequences, 0 if none."""
    plan = _plan(model, replace(inputs, max_model_len=None))
    if plan.verdict == "weights_do_not_fit":
        return 0
    usable = max(0, plan.kv_cache_blocks - 1)
    tokens = usable // sequences * plan.block_size
    if tokens >= plan.model_max_len:
        return plan.model_max_len
    return _friendly_floor(tokens, plan.block_size)


def _smallest_utilization(model: _Model, inputs: PlanInputs) -> Optional[float]:
    """Smallest gpu_memory_utilization (2 decimals, <= 1.0) that fits, or None."""
    plan = _plan(model, inputs)
    if plan.requested_bytes is None:
        return None
    total = int(inputs.gpu_memory_total_mib or 0) * MiB
    block_bytes = plan.block_size * plan.kv_bytes_per_token_per_gpu
    need = (plan.weight_bytes_per_gpu + inputs.reserve_mib * MiB
            + (_cdiv(plan.max_model_len, plan.block_size) + 1) * block_bytes)
    util = math.ceil(need / total * 100 - 1e-9) / 100
    # The closed form ignores per-stage differences: confirm by re-planning.
    for _attempt in range(5):
        if util > 1.0:
            return None
        if _fits(model, replace(inputs, gpu_memory_utilization=util)):
            return util
        util = round(util + 0.01, 2)
    return None


def _smallest_tp(model: _Model, inputs: PlanInputs) -> Optional[int]:
    for tp in TP_CANDIDATES:
        if tp <= inputs.tensor_parallel_size or model.shape.num_heads % tp:
            continue
        if _fits(model, replace(inputs, tensor_parallel_size=tp)):
            return tp
    return None


def _suggest(model: _Model, inputs: PlanInputs, plan: MemoryPlan) -> Dict[str, Any]:
    """Values of vllm_* variables that would make this plan fit."""
    out: Dict[str, Any] = {
        "max_model_len_one_sequence": _largest_len(model, inputs, 1),
    }
    if inputs.max_num_seqs:
        out["max_model_len_for_max_num_seqs"] = _largest_len(model, inputs, inputs.max_num_seqs)
    if inputs.device == "cuda":
        util = _smallest_utilization(model, inputs)
        out["gpu_memory_utilization_needed"] = util
        out["gpu_memory_utilization_cap"] = inputs.max_gpu_memory_utilization
        out["gpu_memory_utilization"] = util if util is not None and util <= inputs.max_gpu_memory_utilization \
            else None
        out["tensor_parallel_size"] = inputs.tensor_parallel_size if plan.ok else _smallest_tp(model, inputs)
        out["kv_cache_dtype"] = "fp8" if (plan.verdict == "does_not_fit" and plan.kv_cache_dtype_bytes > 1
                                          and _fits(model, replace(inputs, kv_cache_dtype="fp8"))) else None
    else:
        need = (_cdiv(plan.max_model_len, plan.block_size) + 1) * plan.block_size * plan.kv_bytes_per_token_per_gpu
        out["cpu_kvcache_space_gib"] = max(1, _cdiv(need, GiB))
    return out


def _describe(plan: MemoryPlan) -> str:
    """One paragraph a person can act on; names the vllm_* variables."""
    s = plan.suggestions
    fixes: List[str] = []
    if plan.verdict == "exceeds_model_limit":
        return (f"vllm_max_model_len={plan.max_model_len} exceeds the model's own limit of {plan.model_max_len} "
                f"tokens ({plan.model_max_len_source}); vLLM refuses to start. Fix: set vllm_max_model_len to "
                f"{plan.model_max_len} or less, or leave it unset.")
    if plan.device == "cuda":
        where = (f"{plan.gpu_memory_utilization} x {gib((plan.gpu_memory_total_mib or 0) * MiB)} = "
                 f"{gib(plan.requested_bytes or 0)}")
        if plan.verdict == "weights_do_not_fit":
            head = (f"The weights need {gib(plan.weight_bytes_per_gpu)} per GPU; with the "
                    f"{gib((plan.reserve_mib or 0) * MiB)} reserve that leaves nothing of the {where} that "
                    f"vllm_gpu_memory_utilization={plan.gpu_memory_utilization} allows.")
        else:
            head = (f"vllm_max_model_len={plan.max_model_len} needs {gib(plan.kv_bytes_needed)} of KV cache per GPU "
                    f"but only {gib(max(0, plan.kv_budget_bytes))} is left ({where}, minus "
                    f"{gib(plan.weight_bytes_per_gpu)} of weights and {gib((plan.reserve_mib or 0) * MiB)} reserve); "
                    f"it holds {plan.kv_capacity_tokens:,} tokens.")
    else:
        head = (f"vllm_max_model_len={plan.max_model_len} needs {gib(plan.kv_bytes_needed)} of KV cache but "
                f"vllm_cpu_kvcache_space_gib={plan.cpu_kvcache_space_gib} holds {plan.kv_capacity_tokens:,} tokens.")
    if plan.verdict != "weights_do_not_fit" and s.get("max_model_len_one_sequence"):
        fixes.append(f"vllm_max_model_len to {s['max_model_len_one_sequence']} or less")
    if plan.device == "cuda":
        if s.get("gpu_memory_utilization") is not None:
            fixes.append(f"vllm_gpu_memory_utilization to {s['gpu_memory_utilization']}")
        if s.get("kv_cache_dtype"):
            fixes.append(f"vllm_kv_cache_dtype to {s['kv_cache_dtype']}")
        if s.get("tensor_parallel_size"):
            fixes.append(f"vllm_tensor_parallel_size to {s['tensor_parallel_size']} "
                         f"({s['tensor_parallel_size']} GPUs)")
    elif s.get("cpu_kvcache_space_gib"):
        fixes.append(f"vllm_cpu_kvcache_space_gib to {s['cpu_kvcache_space_gib']}")
    text = head
    if fixes:
        text += " Fix: set " + ", or ".join(fixes) + "."
    else:
        text += " No single setting fixes it: use more or larger GPUs, or a quantized model."
    needed = s.get("gpu_memory_utilization_needed")
    if plan.device == "cuda" and s.get("gpu_memory_utilization") is None and needed is not None:
        text += (f" (vllm_gpu_memory_utilization would have to be {needed}, above the "
                 f"{s.get('gpu_memory_utilization_cap')} cap.)")
    return text


def _ok_message(plan: MemoryPlan) -> str:
    if plan.device == "cuda":
        space = (f"{gib(plan.kv_budget_bytes)} of KV cache per GPU ({plan.gpu_memory_utilization} x "
                 f"{gib((plan.gpu_memory_total_mib or 0) * MiB)} minus {gib(plan.weight_bytes_per_gpu)} of weights "
                 f"and {gib((plan.reserve_mib or 0) * MiB)} reserve)")
    else:
        space = f"vllm_cpu_kvcache_space_gib={plan.cpu_kvcache_space_gib}"
    return (f"{space} holds {plan.kv_capacity_tokens:,} tokens, {plan.max_full_sequences} full-length "
            "sequence(s) at once.")


def _finish(model: _Model, inputs: PlanInputs, plan: MemoryPlan) -> MemoryPlan:
    plan.suggestions = _suggest(model, inputs, plan)
    if plan.ok:
        plan.message = f"vllm_max_model_len={plan.max_model_len} fits: " + _ok_message(plan)
    else:
        plan.message = _describe(plan)
    return plan


def plan_memory(config: Dict[str, Any], weights: Union[None, int, WeightFiles] = None,
                tokenizer_config: Optional[Dict[str, Any]] = None, **settings: Any) -> MemoryPlan:
    """Plan one vLLM server; ``settings`` are the fields of :class:`PlanInputs`.

    ``weights`` is a :class:`WeightFiles` from :func:`read_weight_files`, an
    exact byte count of the weights as served, or None to estimate them.
    """
    model = _Model(config, weights, tokenizer_config)
    inputs = PlanInputs(**settings)
    return _finish(model, inputs, _plan(model, inputs))


def auto_plan(config: Dict[str, Any], weights: Union[None, int, WeightFiles] = None,
              tokenizer_config: Optional[Dict[str, Any]] = None, raise_utilization: bool = False,
              min_model_len: int = DEFAULT_AUTO_MIN_MODEL_LEN, **settings: Any) -> MemoryPlan:
    """Choose the largest max_model_len (up to the model's limit, or the one given) that fits.

    It must fit ``max_num_seqs`` full sequences at once (1 when unset, which is
    what vLLM itself requires). With ``raise_utilization`` it first raises
    gpu_memory_utilization, no further than ``max_gpu_memory_utilization``.
    """
    model = _Model(config, weights, tokenizer_config)
    inputs = PlanInputs(**settings)
    _validate(inputs)
    ceiling = min(inputs.max_model_len or model.shape.model_max_len, model.shape.model_max_len)
    sequences = inputs.max_num_seqs or 1
    notes: List[str] = []

    def length_at(candidate: PlanInputs) -> int:
        return min(ceiling, _largest_len(model, candidate, sequences))

    chosen = length_at(inputs)
    if chosen < ceiling and raise_utilization and inputs.device == "cuda":
        cap = inputs.max_gpu_memory_utilization
        util = inputs.gpu_memory_utilization
        while util < cap and length_at(replace(inputs, gpu_memory_utilization=util)) < ceiling:
            util = min(cap, round(util + 0.01, 2))
        if util > inputs.gpu_memory_utilization:
            notes.append(f"Auto mode raised vllm_gpu_memory_utilization from {inputs.gpu_memory_utilization} "
                         f"to {util} (cap {cap}).")
            inputs = replace(inputs, gpu_memory_utilization=util)
            chosen = length_at(inputs)
    floor = min(min_model_len, model.shape.model_max_len)
    target = replace(inputs, max_model_len=max(chosen, 1))
    plan = _finish(model, target, _plan(model, target))
    plan.notes.extend(notes)
    if chosen < floor:
        plan.verdict = "does_not_fit" if plan.verdict == "ok" else plan.verdict
        plan.max_model_len = chosen
        at_floor = replace(inputs, max_model_len=floor)
        floor_plan = _finish(model, at_floor, _plan(model, at_floor))
        head = f"Auto mode found no vllm_max_model_len of at least {floor} tokens that fits "
        if sequences > 1 and floor_plan.ok:
            plan.message = (
                head + f"vllm_max_num_seqs={sequences} full sequences at once (the most is {chosen}); at {floor} "
                f"tokens the KV cache holds {floor_plan.max_full_sequences}. Fix: set vllm_max_num_seqs to "
                f"{floor_plan.max_full_sequences} or less (vLLM itself needs room for one), or give the KV cache "
                "more memory (vllm_gpu_memory_utilization, vllm_tensor_parallel_size, vllm_kv_cache_dtype=fp8).")
        else:
            plan.message = head + f"one sequence (the most is {chosen}). At {floor}: " + floor_plan.message
    else:
        plan.message = (f"Auto mode chose vllm_max_model_len={chosen} (the model allows "
                        f"{model.shape.model_max_len}): " + _ok_message(plan))
    return plan


def plan_for_mode(mode: str, config: Dict[str, Any], weights: Union[None, int, WeightFiles] = None,
                  tokenizer_config: Optional[Dict[str, Any]] = None, raise_utilization: bool = False,
                  min_model_len: int = DEFAULT_AUTO_MIN_MODEL_LEN,
                  **settings: Any) -> Tuple[MemoryPlan, Optional[str]]:
    """The plan for ``mode`` and the failure message, None when the mode passes.

    check: the settings as given must fit. auto: choose max_model_len (and
    maybe utilization). report: never fails.
    """
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not one of {', '.join(MODES)}")
    if mode == "auto":
        plan = auto_plan(config, weights, tokenizer_config, raise_utilization=raise_utilization,
                         min_model_len=min_model_len, **settings)
    else:
        plan = plan_memory(config, weights, tokenizer_config, **settings)
    plan.mode = mode
    if mode == "report" or plan.ok:
        return plan, None
    return plan, plan.message
