"""The public shapes tests/gpu serves with random weights, and their tensors.

Kept free of torch so the unit tests compare the planner with vLLM's measured
figures for exactly these shapes (tests/unit/test_vllm_overhead.py).
"""

from __future__ import annotations

SHAPES = {
    # deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B config.json
    "qwen2-1.5b": {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 1536,
        "intermediate_size": 8960, "num_hidden_layers": 28, "num_attention_heads": 12,
        "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 131072,
        "max_window_layers": 21, "rms_norm_eps": 1e-06, "rope_theta": 10000, "sliding_window": 4096,
        "use_sliding_window": False, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
        "hidden_act": "silu", "attention_dropout": 0.0, "initializer_range": 0.02, "use_cache": True,
        "bos_token_id": 151646, "eos_token_id": 151643,
    },
    # meta-llama/Llama-3.1-8B-Instruct config.json
    "llama3.1-8b": {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
        "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
        "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
        "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "tie_word_embeddings": False, "torch_dtype": "bfloat16", "hidden_act": "silu",
        "attention_bias": False, "mlp_bias": False, "head_dim": 128, "pretraining_tp": 1,
        "attention_dropout": 0.0, "initializer_range": 0.02, "use_cache": True,
        "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009],
    },
}


def tensors(cfg: dict) -> dict[str, tuple[int, ...]]:
    h, inter, vocab = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    d = cfg.get("head_dim") or h // heads
    bias = cfg["model_type"] == "qwen2"
    out: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (vocab, h)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out[p + "self_attn.q_proj.weight"] = (heads * d, h)
        out[p + "self_attn.k_proj.weight"] = (kv * d, h)
        out[p + "self_attn.v_proj.weight"] = (kv * d, h)
        if bias:
            out[p + "self_attn.q_proj.bias"] = (heads * d,)
            out[p + "self_attn.k_proj.bias"] = (kv * d,)
            out[p + "self_attn.v_proj.bias"] = (kv * d,)
        out[p + "self_attn.o_proj.weight"] = (h, heads * d)
        out[p + "mlp.gate_proj.weight"] = (inter, h)
        out[p + "mlp.up_proj.weight"] = (inter, h)
        out[p + "mlp.down_proj.weight"] = (h, inter)
        out[p + "input_layernorm.weight"] = (h,)
        out[p + "post_attention_layernorm.weight"] = (h,)
    out["model.norm.weight"] = (h,)
    if not cfg["tie_word_embeddings"]:
        out["lm_head.weight"] = (vocab, h)
    return out


def weight_bytes(cfg: dict, dtype_bytes: int = 2) -> int:
    """Bytes of all tensors as written (bf16)."""
    total = 0
    for shape in tensors(cfg).values():
        count = 1
        for dim in shape:
            count *= dim
        total += count * dtype_bytes
    return total
