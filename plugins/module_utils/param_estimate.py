"""Parameter counts from config.json, for models whose safetensors are not readable.

Also splits a model's bytes over tensor- and pipeline-parallel ranks the way
vLLM shards and partitions it.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ansible_collections.gpufleet.vllm.plugins.module_utils.model_config import ModelShape, _first, model_shape, text_config

# Model types whose MLP is up/down only (no gate projection).
NON_GATED_MLP = ("gpt2", "gpt_bigcode", "gpt_neo", "gpt_neox", "gptj", "falcon", "opt", "bloom",
                 "phi", "mpt", "starcoder2", "RefinedWeb", "RefinedWebModel")
QKV_BIAS_TYPES = ("qwen2", "qwen2_moe", "qwen2_vl", "qwen2_5_vl", "qwen2_audio")
LEARNED_POSITION_TYPES = ("gpt2", "gpt_bigcode", "gpt_neo", "opt")
EXPERT_KEYS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")



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

