"""Layer kinds and context lengths read from public config.json files (module_utils.model_config).

Expected values follow vLLM 0.26/0.32's model code: which layers get a sliding
window (per layer_types when they mix kinds, else the model-level window on
every attention layer) and _get_and_verify_max_len for the lengths.
"""

from __future__ import annotations

import copy
import json
import os
from typing import Any, Dict

import pytest

import public_configs as pc

from ansible_collections.gpufleet.vllm.plugins.module_utils import model_config as mc

DATA = os.path.join(os.path.dirname(__file__), "data", "model_configs")


def load(name: str) -> Dict[str, Any]:
    with open(os.path.join(DATA, name + ".json"), encoding="utf-8") as handle:
        return json.load(handle)


def test_gemma2_even_layers_slide() -> None:
    shape = mc.model_shape(pc.GEMMA2_9B_IT)
    assert len(shape.layer_kinds) == 42
    assert [i for i, k in enumerate(shape.layer_kinds) if k == "sliding"] == list(range(0, 42, 2))
    assert [i for i, k in enumerate(shape.layer_kinds) if k == "full"] == list(range(1, 42, 2))
    assert shape.layer_windows[0] == 4096 and shape.layer_windows[1] is None
    assert (shape.model_max_len, shape.default_max_len) == (8192, 8192)


def test_gemma3_every_sixth_layer_is_global_and_text_config_defaults_apply() -> None:
    shape = mc.model_shape(pc.GEMMA3_27B_IT)
    full = [i for i, k in enumerate(shape.layer_kinds) if k == "full"]
    assert full == [5, 11, 17, 23, 29, 35, 41, 47, 53, 59]
    assert shape.layer_kinds.count("sliding") == 52
    assert set(shape.layer_windows) == {1024, None}
    # Gemma 3's 131072 already includes the linear factor 8: vLLM does not scale it again.
    assert shape.model_max_len == 131072
    assert shape.vocab_size == 262208
    assert (shape.num_kv_heads, shape.head_dim) == (16, 128)


def test_gemma3_sliding_window_pattern_is_honoured() -> None:
    config = copy.deepcopy(pc.GEMMA3_27B_IT)
    config["text_config"]["sliding_window_pattern"] = 2
    assert mc.model_shape(config).layer_kinds[:4] == ("sliding", "full", "sliding", "full")


def test_gpt_oss_layer_types_and_yarn_length() -> None:
    shape = mc.model_shape(pc.GPT_OSS_20B)
    assert shape.layer_kinds == ("sliding", "full") * 12
    assert shape.layer_windows[:2] == (128, None)
    assert shape.model_max_len == 131072 == shape.default_max_len


def test_mistral_v01_window_applies_to_every_layer() -> None:
    shape = mc.model_shape(load("mistral-7b-v0.1"))
    assert shape.layer_kinds == ("sliding",) * 32
    assert shape.layer_windows == (4096,) * 32


def test_full_attention_models() -> None:
    llama = mc.model_shape(pc.LLAMA31_8B)
    assert llama.layer_kinds == ("full",) * 32
    assert llama.layer_windows == (None,) * 32
    assert (llama.model_max_len, llama.default_max_len) == (131072, 131072)
    assert llama.default_max_len_source == llama.model_max_len_source
    # sliding_window set, use_sliding_window false: no window.
    qwen = mc.model_shape(load("deepseek-r1-distill-qwen-1.5b"))
    assert qwen.layer_kinds == ("full",) * 28


def test_qwen2_use_sliding_window_follows_vllm() -> None:
    config = load("deepseek-r1-distill-qwen-1.5b")
    config["use_sliding_window"] = True
    config["sliding_window"] = 4096
    # max_window_layers == num_hidden_layers: transformers marks no layer sliding, so vLLM's
    # model-level window reaches every layer.
    config["max_window_layers"] = 28
    assert mc.model_shape(config).layer_kinds == ("sliding",) * 28
    # Layers from max_window_layers on slide; vLLM's Qwen2 refuses that, and the notes say so.
    config["max_window_layers"] = 21
    shape = mc.model_shape(config)
    assert shape.layer_kinds == ("full",) * 21 + ("sliding",) * 7
    assert any("refuse" in note for note in shape.notes)


def test_longrope_default_is_original_and_limit_is_derived() -> None:
    # vLLM: max_model_len unset -> original_max_position_embeddings; set -> up to 131072.
    shape = mc.model_shape(pc.PHI3_MINI_128K)
    assert shape.model_max_len == 131072
    assert shape.model_max_len_source == "max_position_embeddings"
    assert shape.default_max_len == 4096
    assert "original_max_position_embeddings" in shape.default_max_len_source
    assert any("LongRoPE" in note and "131072" in note for note in shape.notes)
    # Phi-3's model-level sliding_window reaches every layer in vLLM (not interleaved).
    assert shape.layer_kinds == ("sliding",) * 32 and shape.layer_windows[0] == 262144


def test_legacy_su_rope_is_longrope() -> None:
    # The first Phi-3-128k uploads said "su"; vLLM's patch_rope_parameters renames it.
    config = copy.deepcopy(pc.PHI3_MINI_128K)
    config["rope_scaling"] = {"type": "su"}
    shape = mc.model_shape(config)
    assert (shape.model_max_len, shape.default_max_len) == (131072, 4096)


def test_hybrid_linear_attention_layers_are_state() -> None:
    shape = mc.model_shape(pc.QWEN3_NEXT_80B)
    assert [i for i, k in enumerate(shape.layer_kinds) if k == "full"] == list(range(3, 48, 4))
    assert shape.layer_kinds.count("state") == 36
    assert any("36 of 48 layers keep a recurrent state" in note for note in shape.notes)


def test_explicit_layer_types_of_a_mamba_hybrid() -> None:
    # granitemoehybrid names its layers "mamba" / "attention".
    config = dict(pc.LLAMA31_8B, model_type="granitemoehybrid", num_hidden_layers=4,
                  layer_types=["mamba", "mamba", "mamba", "attention"])
    assert mc.model_shape(config).layer_kinds == ("state", "state", "state", "full")


def test_short_or_unknown_layer_types_are_reported() -> None:
    short = dict(pc.LLAMA31_8B, layer_types=["full_attention"] * 3)
    shape = mc.model_shape(short)
    assert shape.layer_kinds == ("full",) * 32
    assert any("layer_types names 3 layers for 32" in note for note in shape.notes)
    odd = dict(pc.LLAMA31_8B, layer_types=["full_attention"] * 31 + ["chunked_attention"])
    shape = mc.model_shape(odd)
    assert any("chunked_attention" in note for note in shape.notes)


# --------------------------------------------------------------------------- #
# Damaged configs: one field each, refused naming the key and the value
# --------------------------------------------------------------------------- #

def damaged(base: Dict[str, Any], path: str, value: Any) -> Dict[str, Any]:
    config = copy.deepcopy(base)
    *parents, key = path.split(".")
    target = config
    for parent in parents:
        target = target[parent]
    target[key] = value
    return config


LLAMA3 = "meta-llama-3-8b"
# (config, key as written in config.json, bad value); every one would crash vLLM's model code.
DAMAGED = [
    (LLAMA3, "num_key_value_heads", 0),
    (LLAMA3, "num_key_value_heads", -8),
    (LLAMA3, "num_key_value_heads", "8"),
    (LLAMA3, "num_key_value_heads", 8.0),
    (LLAMA3, "num_key_value_heads", True),
    (LLAMA3, "num_hidden_layers", 0),
    (LLAMA3, "num_hidden_layers", "32"),
    (LLAMA3, "num_hidden_layers", 32.5),
    (LLAMA3, "num_attention_heads", -32),
    (LLAMA3, "num_attention_heads", "32"),
    (LLAMA3, "hidden_size", 4096.0),
    (LLAMA3, "vocab_size", 0),
    (LLAMA3, "vocab_size", "128256"),
    (LLAMA3, "intermediate_size", -1),
    (LLAMA3, "head_dim", 0),
    (LLAMA3, "head_dim", "128"),
    (LLAMA3, "head_dim", 128.0),
    (LLAMA3, "max_position_embeddings", "8192"),
    (LLAMA3, "max_position_embeddings", 0),
    ("falcon-7b", "vocab_size", -65024),
    ("deepseek-v2-lite", "kv_lora_rank", "512"),
    ("gpt_bigcode-santacoder", "n_head", 0),
    ("GEMMA3_27B_IT", "text_config.num_key_value_heads", 0),
    ("GEMMA3_27B_IT", "text_config.num_hidden_layers", "62"),
    ("GEMMA3_27B_IT", "text_config.head_dim", -128),
]


def base_config(name: str) -> Dict[str, Any]:
    return copy.deepcopy(getattr(pc, name)) if name.isupper() else load(name)


@pytest.mark.parametrize("name, key, value", DAMAGED)
def test_damaged_field_is_refused_naming_key_value_and_fix(name: str, key: str, value: Any) -> None:
    with pytest.raises(mc.ConfigError) as caught:
        mc.model_shape(damaged(base_config(name), key, value))
    message = str(caught.value)
    assert f"config.json {key} is {json.dumps(value)}:" in message
    assert "Fix:" in message and "vllm_model" in message


def test_kv_head_count_of_zero_is_not_read_as_multi_head_attention() -> None:
    # Before: `if value` fell back to num_attention_heads, planning 4x the Llama-3 KV cache.
    with pytest.raises(mc.ConfigError, match="num_key_value_heads is 0"):
        mc.model_shape(damaged(load(LLAMA3), "num_key_value_heads", 0))


def test_kv_heads_must_divide_the_attention_heads() -> None:
    # vLLM's Attention layer asserts num_heads % num_kv_heads == 0.
    with pytest.raises(mc.ConfigError) as caught:
        mc.model_shape(damaged(load(LLAMA3), "num_key_value_heads", 12))
    assert "num_key_value_heads is 12: expected a divisor of num_attention_heads (32)" in str(caught.value)
    nested = damaged(pc.GEMMA3_27B_IT, "text_config.num_key_value_heads", 64)
    with pytest.raises(mc.ConfigError, match=r"text_config.num_key_value_heads is 64: .*text_config.num_attention"):
        mc.model_shape(nested)


def test_derived_head_dim_blames_the_keys_the_file_sets() -> None:
    config = damaged(load(LLAMA3), "num_attention_heads", 30)
    config["num_key_value_heads"] = 10
    with pytest.raises(mc.ConfigError) as caught:
        mc.model_shape(config)
    message = str(caught.value)
    assert "hidden_size is 4096: expected a multiple of num_attention_heads (30)" in message
    assert "head_dim is" not in message


@pytest.mark.parametrize("key", ["num_hidden_layers", "num_attention_heads", "vocab_size"])
def test_null_required_key_is_missing(key: str) -> None:
    with pytest.raises(ValueError, match=r"config.json names no .*null counts as missing.*Fix:"):
        mc.model_shape(damaged(load(LLAMA3), key, None))


def test_null_optional_keys_keep_transformers_defaults() -> None:
    # head_dim null: derived from hidden / heads; num_key_value_heads null: one per head (transformers).
    shape = mc.model_shape(damaged(damaged(load(LLAMA3), "head_dim", None), "num_key_value_heads", None))
    assert (shape.head_dim, shape.num_kv_heads) == (128, 32)
    assert mc.model_shape(damaged(load(LLAMA3), "max_position_embeddings", 8192.0)).model_max_len == 8192
