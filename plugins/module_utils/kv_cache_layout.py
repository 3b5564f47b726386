"""How vLLM V1 (0.26 to 0.32) lays out its KV cache over a model's layers.

Mirrors ``vllm/v1/core/kv_cache_utils.py`` (``_get_kv_cache_groups_uniform_page_size``,
``get_kv_cache_config_from_groups``, ``_max_memory_usage_bytes_from_groups``,
``get_max_concurrency_for_kv_cache_config``, ``get_kv_cache_capacity``) and the
specs' ``max_memory_usage_bytes`` in ``vllm/v1/kv_cache_interface.py``:

- layers with the same spec (full attention, or sliding window W) form a bucket;
  buckets split into groups of ``group_size`` layers, padded where they do not
  divide, and every group shares ONE pool of ``num_blocks`` blocks;
- a request needs, per group, ``cdiv(L, block)`` blocks for full attention and
  ``cdiv(min(W - 1 + in-flight tokens, L), block) + 1`` for a sliding window;
- vLLM refuses to start when ``group_size * page * blocks_per_request`` exceeds
  the memory left for the KV cache, and logs ``int(concurrency * L)`` tokens.

Limitations: every attention layer has the same bytes per token (same KV heads
and head_dim), which holds for the models this collection plans; layers with a
recurrent state (mamba, linear attention) are left out, while vLLM pads their
state into the same pages; decode context parallelism is not modelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

from ansible_collections.gpufleet.vllm.plugins.module_utils.model_config import FULL, SLIDING, STATE


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def layer_bytes_per_token(num_kv_heads: int, head_dim: int, dtype_bytes: int,
                          tensor_parallel_size: int = 1, mla: bool = False) -> int:
    """KV bytes one attention layer keeps per token on one GPU (page = block_size x this).

    MLA keeps one latent of ``head_dim`` (kv_lora_rank + qk_rope_head_dim) per
    token on every rank; other attention keeps K and V for its share of the KV
    heads, at least one head per rank.
    """
    if mla:
        return head_dim * dtype_bytes
    return 2 * max(1, num_kv_heads // tensor_parallel_size) * head_dim * dtype_bytes


@dataclass(frozen=True)
class KvGroup:
    """One KV cache group: layers sharing a block table."""

    kind: str  # FULL or SLIDING
    window: Optional[int]  # tokens, for SLIDING
    layers: Tuple[int, ...]  # model layer indices; padding slots are not listed
    blocks_per_request: int  # blocks one max_model_len request holds in this group


@dataclass(frozen=True)
class KvLayout:
    """The figures vLLM derives from its KV cache groups for one worker."""

    block_size: int  # tokens per block (the sliding block size for sliding-only models)
    page_bytes: int  # one layer, one block
    group_size: int  # layers per group (pools): the divisor of available memory
    groups: Tuple[KvGroup, ...]
    padding_slots: int  # group slots with no layer: memory vLLM allocates but never uses
    state_layers: int  # mamba / linear-attention layers, left out of the KV cache
    num_blocks: int  # available_bytes // page_bytes // group_size
    blocks_per_request: int  # sum over groups
    max_concurrency: float  # num_blocks / blocks_per_request ("Maximum concurrency ... x")
    capacity_tokens: int  # int(max_concurrency * max_model_len) ("GPU KV cache size: N tokens")
    needed_bytes: int  # group_size * page_bytes * blocks_per_request: one max_model_len request
    available_bytes: int
    fits: bool  # vLLM starts: needed_bytes <= available_bytes (and available_bytes > 0)
    largest_fitting_len: int  # vLLM's binary search, 1..max_model_len; 0 when one token does not fit


def _per_layer_windows(kinds: Sequence[str],
                       windows: Union[None, int, Sequence[Optional[int]]]) -> List[Optional[int]]:
    if windows is None or isinstance(windows, int):
        return [windows if kind == SLIDING else None for kind in kinds]
    if len(windows) != len(kinds):
        raise ValueError(f"{len(windows)} sliding windows for {len(kinds)} layers")
    return list(windows)


def kv_groups(layer_kinds: Sequence[str],
              sliding_windows: Union[None, int, Sequence[Optional[int]]] = None,
              hybrid_kv_cache_manager: bool = True) -> Tuple[int, List[Tuple[str, Optional[int], List[int]]], int]:
    """vLLM's grouping: (group_size, [(kind, window, layer indices)], padding slots).

    ``hybrid_kv_cache_manager=False`` (vLLM's CPU build, some KV connectors)
    turns sliding layers into full ones when the model mixes both.
    """
    kinds = list(layer_kinds)
    bad = sorted({k for k in kinds if k not in (FULL, SLIDING, STATE)})
    if bad:
        raise ValueError(f"unknown layer kinds {bad}: use {FULL!r}, {SLIDING!r} or {STATE!r}")
    windows = _per_layer_windows(kinds, sliding_windows)
    for index, kind in enumerate(kinds):
        if kind == SLIDING and not (isinstance(windows[index], int) and windows[index] > 0):
            raise ValueError(f"layer {index} slides but has no positive window: {windows[index]!r}")
    if not hybrid_kv_cache_manager and FULL in kinds and SLIDING in kinds:
        kinds = [FULL if k == SLIDING else k for k in kinds]
    buckets: Dict[Tuple[str, Optional[int]], List[int]] = {}
    for index, kind in enumerate(kinds):
        if kind != STATE:
            buckets.setdefault((kind, windows[index] if kind == SLIDING else None), []).append(index)
    if not buckets:
        return 0, [], 0
    sizes = [len(layers) for layers in buckets.values()]
    group_size = min(sizes)
    # vLLM: "use the maximum number of layers as the group size to avoid too many padding layers".
    if max(sizes) < group_size * 1.5:
        group_size = max(sizes)
    groups: List[Tuple[str, Optional[int], List[int]]] = []
    padding = 0
    for (kind, window), layers in buckets.items():
        count = _cdiv(len(layers), group_size)
        padding += count * group_size - len(layers)
        # layers[i::count], as vLLM does, so pipeline stages pad evenly.
        groups.extend((kind, window, layers[i::count]) for i in range(count))
    return group_size, groups, padding


def _blocks_per_request(kind: str, window: Optional[int], block_size: int, max_model_len: int,
                        in_flight_tokens: int, extra_retained_tokens: int) -> int:
    if kind == SLIDING:
        assert window is not None
        tokens = min(window - 1 + extra_retained_tokens + in_flight_tokens, max_model_len)
        # +1: the window need not start at a block boundary.
        return _cdiv(tokens, block_size) + 1
    return _cdiv(max_model_len, block_size)


def kv_layout(layer_kinds: Sequence[str],
              sliding_windows: Union[None, int, Sequence[Optional[int]]],
              bytes_per_token: int,
              block_size: int,
              max_model_len: int,
              max_num_batched_tokens: int,
              available_bytes: int,
              max_concurrent_batches: int = 2,
              stage_layers: Optional[Sequence[int]] = None,
              hybrid_kv_cache_manager: bool = True,
              sliding_block_size: Optional[int] = None,
              extra_retained_tokens: int = 0) -> KvLayout:
    """vLLM's KV cache layout, capacity and start-up check for one worker.

    layer_kinds: one of FULL / SLIDING / STATE per layer of the whole model
        (``ModelShape.layer_kinds``).
    sliding_windows: per-layer windows (``ModelShape.layer_windows``) or one
        window for every sliding layer.
    bytes_per_token: one attention layer on one GPU (``layer_bytes_per_token``).
    block_size: ``--block-size`` (16 on CUDA by default).
    max_num_batched_tokens, max_concurrent_batches: sliding layers hold
        ``max_concurrent_batches * max_num_batched_tokens`` in-flight tokens
        beyond the window; 2 with async scheduling and no pipeline parallelism
        (the 0.26/0.32 default), otherwise the pipeline size (+1 on the V2 model
        runner with async scheduling).
    available_bytes: memory this worker has left for the KV cache.
    stage_layers: with pipeline parallelism, the layer indices of this worker's
        stage; groups are formed over the whole model and each worker divides
        its memory by the layers of its stage in the fullest group. vLLM then
        gives every worker the smallest num_blocks of all: take the minimum.
    hybrid_kv_cache_manager: False where vLLM disables it (CPU build).
    sliding_block_size: block size of sliding layers in a model without full
        attention layers; vLLM 0.26+ gives them the attention backend's smallest
        kernel block (16 on FlashAttention / Triton / FlashInfer) rather than
        ``--block-size``. With full layers present vLLM scales them to block_size.
    extra_retained_tokens: vLLM 0.32's margin for multi-module MTP drafts (0 otherwise).
    """
    for name, value in (("bytes_per_token", bytes_per_token), ("block_size", block_size),
                        ("max_model_len", max_model_len), ("max_num_batched_tokens", max_num_batched_tokens),
                        ("max_concurrent_batches", max_concurrent_batches)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    kinds = list(layer_kinds)
    group_size, groups, padding = kv_groups(kinds, sliding_windows, hybrid_kv_cache_manager)
    state_layers = sum(1 for k in kinds if k == STATE)
    if any(kind == FULL for kind, _, _ in groups) or not sliding_block_size:
        block = block_size
    else:
        block = sliding_block_size
    page = block * bytes_per_token
    in_flight = max_concurrent_batches * max_num_batched_tokens

    def per_request(length: int) -> List[int]:
        return [_blocks_per_request(kind, window, block, length, in_flight, extra_retained_tokens)
                for kind, window, _ in groups]

    if not groups:
        # Attention-free: vLLM keeps no KV cache and starts.
        return KvLayout(block, page, 0, (), 0, state_layers, 0, 0, 0.0, 0, 0, available_bytes,
                        True, max_model_len)
    if stage_layers is not None:
        stage = set(stage_layers)
        group_size = max(sum(1 for layer in layers if layer in stage) for _, _, layers in groups)
        if group_size == 0:
            raise ValueError("stage_layers holds no attention layer of the model")
    blocks = per_request(max_model_len)
    blocks_per_request = sum(blocks)
    num_blocks = max(0, available_bytes // page // group_size)
    needed = group_size * page * blocks_per_request

    def fits_len(length: int) -> bool:
        return group_size * page * sum(per_request(length)) <= available_bytes

    largest = 0
    if available_bytes > 0 and fits_len(1):
        low, high, largest = 1, max_model_len, 1
        while low <= high:
            mid = (low + high) // 2
            if fits_len(mid):
                largest, low = mid, mid + 1
            else:
                high = mid - 1
    concurrency = num_blocks / blocks_per_request
    return KvLayout(
        block_size=block,
        page_bytes=page,
        group_size=group_size,
        groups=tuple(KvGroup(kind, window, tuple(layers), count)
                     for (kind, window, layers), count in zip(groups, blocks)),
        padding_slots=padding,
        state_layers=state_layers,
        num_blocks=num_blocks,
        blocks_per_request=blocks_per_request,
        max_concurrency=concurrency,
        capacity_tokens=int(concurrency * max_model_len),
        needed_bytes=needed,
        available_bytes=available_bytes,
        fits=available_bytes > 0 and needed <= available_bytes,
        largest_fitting_len=largest,
    )
