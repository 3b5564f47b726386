"""vLLM V1's KV cache groups, capacity and start-up check (module_utils.kv_cache_layout).

Layer kinds come from public config.json files through model_config; every
expected figure is worked out by hand in the comments from vLLM 0.26/0.32's
formulas (vllm/v1/core/kv_cache_utils.py, vllm/v1/kv_cache_interface.py):
page = block x bytes/token/layer; num_blocks = available // page // group_size;
full group: cdiv(L, 16) blocks; sliding group: cdiv(min(W - 1 + 2 x batched, L), 16) + 1;
needed = group_size x page x blocks per request; logged tokens = int(num_blocks / blocks x L).
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict

import public_configs as pc
import pytest

from ansible_collections.gpufleet.vllm.plugins.module_utils import kv_cache_layout as kl
from ansible_collections.gpufleet.vllm.plugins.module_utils.model_config import model_shape

GiB = 1 << 30
DATA = os.path.join(os.path.dirname(__file__), "data", "model_configs")


def load(name: str) -> Dict[str, Any]:
    with open(os.path.join(DATA, name + ".json"), encoding="utf-8") as handle:
        return json.load(handle)


def layout(config: Dict[str, Any], available: int, max_model_len: int, batched: int = 8192,
           **kwargs: Any) -> kl.KvLayout:
    shape = model_shape(config)
    per_token = kl.layer_bytes_per_token(shape.num_kv_heads, shape.head_dim, 2)
    return kl.kv_layout(shape.layer_kinds, shape.layer_windows, per_token, 16, max_model_len, batched,
                        available, **kwargs)


def test_bytes_per_token_split_by_tensor_parallelism_and_mla() -> None:
    assert kl.layer_bytes_per_token(8, 128, 2) == 2 * 8 * 128 * 2
    assert kl.layer_bytes_per_token(8, 128, 2, tensor_parallel_size=4) == 2 * 2 * 128 * 2
    # One KV head is replicated, not split below one per rank.
    assert kl.layer_bytes_per_token(1, 64, 2, tensor_parallel_size=8) == 2 * 1 * 64 * 2
    assert kl.layer_bytes_per_token(1, 576, 2, tensor_parallel_size=8, mla=True) == 576 * 2


def test_full_attention_only_is_one_group_of_all_layers() -> None:
    # Llama-3.1-8B: 32 layers x 8 KV heads x 128, bf16 -> page 16 x 4096 = 65536 B.
    # 10 GiB // 65536 // 32 = 5120 blocks; 131072 tokens take 8192 blocks.
    big = layout(pc.LLAMA31_8B, 10 * GiB, 131072)
    assert big.group_size == 32 and len(big.groups) == 1 and big.groups[0].kind == "full"
    assert big.groups[0].layers == tuple(range(32))
    assert (big.page_bytes, big.num_blocks, big.blocks_per_request) == (65536, 5120, 8192)
    assert big.capacity_tokens == 81920  # int(5120 / 8192 x 131072)
    assert big.needed_bytes == 32 * 65536 * 8192 == 16 * GiB
    assert not big.fits
    # 32 x 65536 x cdiv(L, 16) <= 10 GiB  ->  cdiv(L, 16) <= 5120  ->  L = 81920.
    assert big.largest_fitting_len == 81920
    small = layout(pc.LLAMA31_8B, 10 * GiB, 8192)
    assert small.fits and small.max_concurrency == 10.0 and small.capacity_tokens == 81920


def test_sliding_only_model_keeps_the_window_plus_in_flight_tokens() -> None:
    # Mistral-7B-v0.1: 32 layers slide over 4096 tokens; page 65536 B, 5120 blocks in 10 GiB.
    # min(4095 + 2 x 8192, 32768) = 20479 tokens -> cdiv(20479, 16) + 1 = 1281 blocks.
    mistral = layout(load("mistral-7b-v0.1"), 10 * GiB, 32768)
    assert mistral.group_size == 32 and [g.kind for g in mistral.groups] == ["sliding"]
    assert mistral.blocks_per_request == 1281
    assert mistral.capacity_tokens == 130969  # int(5120 / 1281 x 32768)
    assert mistral.needed_bytes == 32 * 65536 * 1281
    assert mistral.fits and mistral.largest_fitting_len == 32768
    # Below the window a sliding layer still holds one block more than a full one: 256 + 1.
    assert layout(load("mistral-7b-v0.1"), 10 * GiB, 4096).blocks_per_request == 257
    # One batch in flight (pipeline or synchronous scheduling): min(4095 + 8192, 32768) -> 769.
    assert layout(load("mistral-7b-v0.1"), 10 * GiB, 32768, max_concurrent_batches=1).blocks_per_request == 769


def test_gpt_oss_20b_two_groups_of_twelve() -> None:
    # 12 sliding (W=128) + 12 full: max 12 < 1.5 x min 12, so group_size 12, two groups.
    # page 16 x (2 x 8 x 64 x 2) = 32768 B; 20 GiB // 32768 // 12 = 54613 blocks.
    # full: cdiv(131072, 16) = 8192; sliding: cdiv(min(127 + 16384, 131072), 16) + 1 = 1033.
    oss = layout(pc.GPT_OSS_20B, 20 * GiB, 131072)
    assert oss.group_size == 12 and oss.padding_slots == 0
    assert [(g.kind, g.window, g.layers) for g in oss.groups] == [
        ("sliding", 128, tuple(range(0, 24, 2))),
        ("full", None, tuple(range(1, 24, 2))),
    ]
    assert [g.blocks_per_request for g in oss.groups] == [1033, 8192]
    assert (oss.num_blocks, oss.blocks_per_request) == (54613, 9225)
    assert oss.capacity_tokens == 775960  # int(54613 / 9225 x 131072)
    assert oss.needed_bytes == 12 * 32768 * 9225
    assert oss.fits
    # 1 GiB: 12 x 32768 x (cdiv(L, 16) + 1033) <= 2^30 -> cdiv(L, 16) <= 1697 -> L = 27152.
    tight = layout(pc.GPT_OSS_20B, GiB, 131072)
    assert not tight.fits and tight.num_blocks == 2730
    assert tight.largest_fitting_len == 27152


def test_gemma3_27b_one_full_group_and_six_sliding_groups() -> None:
    # 52 sliding (W=1024) + 10 full: group_size 10; cdiv(52, 10) = 6 sliding groups, 8 padding slots.
    # page 16 x (2 x 16 x 128 x 2) = 131072 B; 40 GiB // 131072 // 10 = 32768 blocks.
    # full: 8192 blocks; sliding: cdiv(1023 + 16384, 16) + 1 = 1089, six times -> 14726.
    gemma = layout(pc.GEMMA3_27B_IT, 40 * GiB, 131072)
    assert gemma.group_size == 10 and gemma.padding_slots == 8
    kinds = [g.kind for g in gemma.groups]
    assert kinds.count("full") == 1 and kinds.count("sliding") == 6
    sliding = [g for g in gemma.groups if g.kind == "sliding"]
    assert sorted(len(g.layers) for g in sliding) == [8, 8, 9, 9, 9, 9]
    assert sorted(i for g in sliding for i in g.layers) == [i for i in range(62) if (i + 1) % 6]
    assert gemma.groups[-1].layers == tuple(range(5, 62, 6))
    assert (gemma.num_blocks, gemma.blocks_per_request) == (32768, 14726)
    assert gemma.capacity_tokens == 291658  # int(32768 / 14726 x 131072)
    assert gemma.needed_bytes == 10 * 131072 * 14726
    assert gemma.fits
    # 16 GiB: 10 x 131072 x (cdiv(L, 16) + 6534) <= 2^34 -> cdiv(L, 16) <= 6573 -> L = 105168.
    tight = layout(pc.GEMMA3_27B_IT, 16 * GiB, 131072)
    assert not tight.fits and tight.largest_fitting_len == 105168


def test_gemma2_halves_make_two_groups() -> None:
    gemma2 = layout(pc.GEMMA2_9B_IT, 10 * GiB, 8192)
    assert gemma2.group_size == 21 and [g.kind for g in gemma2.groups] == ["sliding", "full"]


def test_uneven_kinds_are_padded_to_the_larger_count() -> None:
    # vLLM's own example: gpt-oss-20b plus an EAGLE layer, 12 sliding + 13 full -> (13, 13).
    kinds = ["sliding", "full"] * 12 + ["full"]
    result = kl.kv_layout(kinds, 128, 2048, 16, 4096, 8192, GiB)
    assert result.group_size == 13 and result.padding_slots == 1 and len(result.groups) == 2


def test_state_layers_hold_no_kv_cache() -> None:
    # Qwen3-Next: only the 12 full-attention layers (one group) hold KV; page 16 x 2048 B.
    nxt = layout(pc.QWEN3_NEXT_80B, 4 * GiB, 262144)
    assert nxt.state_layers == 36
    assert nxt.group_size == 12 and [g.layers for g in nxt.groups] == [tuple(range(3, 48, 4))]
    assert nxt.num_blocks == 4 * GiB // 32768 // 12
    assert nxt.needed_bytes == 12 * 32768 * 16384
    free = kl.kv_layout(["state"] * 4, None, 2048, 16, 4096, 8192, GiB)
    assert free.groups == () and free.fits and free.capacity_tokens == 0


def test_without_the_hybrid_manager_sliding_layers_count_as_full() -> None:
    # vLLM's CPU build: one group of all 24 layers, each holding the whole context.
    oss = layout(pc.GPT_OSS_20B, 20 * GiB, 131072, hybrid_kv_cache_manager=False)
    assert oss.group_size == 24 and [g.kind for g in oss.groups] == ["full"]
    assert oss.blocks_per_request == 8192


def test_pipeline_stage_divides_by_its_own_layers() -> None:
    # gpt-oss over two stages (layers 0-11, 12-23): each group has 6 layers on a stage,
    # so 20 GiB // 32768 // 6 blocks, and a request still needs 9225 blocks.
    stage = layout(pc.GPT_OSS_20B, 20 * GiB, 131072, stage_layers=range(12))
    assert stage.group_size == 6
    assert stage.num_blocks == 20 * GiB // 32768 // 6
    assert stage.needed_bytes == 6 * 32768 * 9225


def test_sliding_only_models_may_use_the_backend_block() -> None:
    # --block-size 32 with Mistral: vLLM 0.26 gives sliding layers the 16-token kernel block.
    shape = model_shape(load("mistral-7b-v0.1"))
    result = kl.kv_layout(shape.layer_kinds, shape.layer_windows, 4096, 32, 32768, 8192, 10 * GiB,
                          sliding_block_size=16)
    assert (result.block_size, result.page_bytes, result.blocks_per_request) == (16, 65536, 1281)
    # With full layers present the sliding ones are scaled to --block-size.
    oss = model_shape(pc.GPT_OSS_20B)
    mixed = kl.kv_layout(oss.layer_kinds, oss.layer_windows, 2048, 32, 131072, 8192, GiB, sliding_block_size=16)
    assert mixed.block_size == 32


@pytest.mark.parametrize("available", [GiB // 3, GiB, 3 * GiB + 12345])
def test_largest_fitting_len_is_the_boundary(available: int) -> None:
    shape = model_shape(pc.GEMMA3_27B_IT)

    def at(length: int) -> kl.KvLayout:
        return kl.kv_layout(shape.layer_kinds, shape.layer_windows, 8192, 16, length, 8192, available)

    best = at(131072).largest_fitting_len
    assert 0 < best < 131072
    assert at(best).fits and not at(best + 1).fits


def test_nothing_fits_without_memory() -> None:
    result = kl.kv_layout(["full"] * 2, None, 4096, 16, 4096, 8192, 0)
    assert not result.fits and result.num_blocks == 0 and result.largest_fitting_len == 0


@pytest.mark.parametrize(
    "kinds, windows, words",
    [
        (["full", "local"], None, "unknown layer kinds"),
        (["full", "sliding"], None, "no positive window"),
        (["sliding", "sliding"], [128], "2 layers"),
    ],
)
def test_bad_layouts_are_named(kinds: Any, windows: Any, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        kl.kv_layout(kinds, windows, 4096, 16, 4096, 8192, GiB)


def test_bad_numbers_are_named() -> None:
    with pytest.raises(ValueError, match="block_size"):
        kl.kv_layout(["full"], None, 4096, 0, 4096, 8192, GiB)
