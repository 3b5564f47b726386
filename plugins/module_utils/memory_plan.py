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

import math
from dataclasses import replace
from typing import Any, Dict, List, Optional, Tuple, Union

from ansible_collections.gpufleet.vllm.plugins.module_utils.kv_cache_layout import (
    KvLayout,
    kv_layout,
    layer_bytes_per_token,
)
from ansible_collections.gpufleet.vllm.plugins.module_utils.model_config import (
    FULL,
    ModelShape,
    model_shape,
    text_config,
)
from ansible_collections.gpufleet.vllm.plugins.module_utils.model_weights import (
    MiB,
    WeightFiles,
    read_weight_files,
    weight_bytes_from_dir,
)
from ansible_collections.gpufleet.vllm.plugins.module_utils.plan_inputs import (
    DEFAULT_MAX_GPU_MEMORY_UTILIZATION,
    DEFAULT_RESERVE_MIB,
    DEVICES,
    DTYPE_BYTES,
    DTYPES,
    KV_CACHE_DTYPES,
    MODES,
    VERDICTS,
    MemoryPlan,
    PlanInputs,
    resolve_dtype,
    resolve_kv_cache_dtype,
    validate_inputs,
)
from ansible_collections.gpufleet.vllm.plugins.module_utils.plan_messages import describe, ok_message
from ansible_collections.gpufleet.vllm.plugins.module_utils.param_estimate import (
    _linear_bytes,
    _stage_params,
    estimate_parameters,
    pp_partitions,
)
from ansible_collections.gpufleet.vllm.plugins.module_utils.vllm_overhead import (
    StartupOverhead,
    cudagraph_charged,
    startup_overhead,
    utilization_ceiling,
)

__all__ = [
    "DEFAULT_AUTO_MIN_MODEL_LEN", "DEFAULT_MAX_GPU_MEMORY_UTILIZATION", "DEFAULT_RESERVE_MIB", "DEVICES", "DTYPES",
    "GiB", "KV_CACHE_DTYPES", "MODES", "VERDICTS", "MiB", "MemoryPlan", "ModelShape", "PlanInputs", "WeightFiles",
    "auto_plan", "estimate_parameters", "model_shape", "plan_for_mode", "plan_memory", "pp_partitions",
    "read_weight_files", "weight_bytes_from_dir",
]

GiB = 1024 ** 3
# tensor_parallel_size values the planner suggests, smallest first.
TP_CANDIDATES = (1, 2, 4, 8, 16, 32, 64)

# Auto mode refuses to pick a context shorter than this (or the model's own).
DEFAULT_AUTO_MIN_MODEL_LEN = 2048
# vLLM's CacheConfig.DEFAULT_BLOCK_SIZE on CUDA; the CPU platform switches to
# 128 unless the model uses MLA (its CPU kernel only compiles with 16).
CUDA_BLOCK_SIZE = 16
CPU_BLOCK_SIZE = 128
CPU_MLA_BLOCK_SIZE = 16
# vLLM's CPU build batches this many tokens by default (its OpenAI server).
CPU_BATCHED_TOKENS = 2048

def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _friendly_floor(tokens: int, block_size: int) -> int:
    """Round a length down to a value people recognise (multiples of 1024)."""
    if tokens >= 1024:
        return tokens // 1024 * 1024
    return tokens // block_size * block_size


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
    validate_inputs(inputs)
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
        fits = [t for t in TP_CANDIDATES if shape.num_heads % t == 0 and t <= shape.num_heads]
        raise ValueError(
            f"vllm_tensor_parallel_size={tp} does not divide the model's {shape.num_heads} attention heads, so "
            f"vLLM refuses to start (\"Total number of attention heads ({shape.num_heads}) must be divisible by "
            f"tensor parallel size ({tp}).\"). Fix: set vllm_tensor_parallel_size to one of "
            f"{', '.join(str(t) for t in fits)}.")
    max_len = inputs.max_model_len or shape.default_max_len or shape.model_max_len
    seq_blocks = _cdiv(max_len, block_size)
    weights, source = model.stage_weight_bytes(dtype_bytes, tp, pp, notes)
    layers = pp_partitions(shape.num_layers, pp)
    requested: Optional[int] = None
    overhead: Optional[StartupOverhead] = None
    total = int(inputs.gpu_memory_total_mib or 0) * MiB
    if inputs.device == "cuda":
        # vLLM: requested_memory = ceil(total_memory * gpu_memory_utilization)
        requested = int(math.ceil(total * inputs.gpu_memory_utilization))
        overhead = startup_overhead(
            model.cfg, shape, dtype_bytes, tp, gpu_memory_mib=int(inputs.gpu_memory_total_mib or 0),
            gpu_name=inputs.gpu_name, max_num_batched_tokens=inputs.max_num_batched_tokens,
            max_num_seqs=inputs.max_num_seqs, max_model_len=max_len,
            cudagraph_charged=cudagraph_charged(model.config, model.cfg, model.shape, inputs.cudagraph_in_budget),
            huge_tier=inputs.huge_gpu_batch_defaults)
    stages: List[Dict[str, int]] = []
    for count, weight in zip(layers, weights):
        per_token = factor * count * kv_heads_gpu * shape.head_dim * kv_bytes
        if requested is not None:
            budget = requested - weight - (overhead.charged_bytes if overhead else 0) - inputs.reserve_mib * MiB
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
    full_sequences = usable // seq_blocks
    needed = seq_blocks * block_size * per_token
    fits = usable >= seq_blocks
    layout = _grouped_layout(shape, inputs, stages, kv_bytes, block_size, max_len, overhead)
    if layout is not None:
        blocks, capacity, concurrency = layout.num_blocks, layout.capacity_tokens, layout.max_concurrency
        full_sequences = max(0, layout.num_blocks - 1) // layout.blocks_per_request
        needed, fits = layout.needed_bytes, layout.fits
    if overhead is not None and requested is not None and requested > total - overhead.context_bytes:
        verdict = "utilization_too_high"
    elif requested is not None and any(s["kv_budget_bytes"] <= 0 for s in stages):
        verdict = "weights_do_not_fit"
    elif max_len > shape.model_max_len:
        verdict = "exceeds_model_limit"
    elif fits:
        verdict = "ok"
    else:
        verdict = "does_not_fit"
    if requested is None and float(inputs.cpu_kvcache_space_gib or 0) != int(inputs.cpu_kvcache_space_gib or 0):
        notes.append(f"vLLM 0.32 reads VLLM_CPU_KVCACHE_SPACE as whole GiB: vllm_cpu_kvcache_space_gib="
                     f"{inputs.cpu_kvcache_space_gib} would stop it at start; use an integer.")
    if inputs.max_num_seqs and verdict == "ok" and full_sequences < inputs.max_num_seqs:
        notes.append(f"At full length {full_sequences} of vllm_max_num_seqs={inputs.max_num_seqs} "
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
        overhead=overhead.as_dict() if overhead else {},
        cpu_kvcache_space_gib=inputs.cpu_kvcache_space_gib if requested is None else None,
        requested_bytes=requested,
        weight_bytes_per_gpu=max(s["weight_bytes"] for s in stages),
        kv_bytes_per_token_per_gpu=max(s["kv_bytes_per_token"] for s in stages),
        kv_budget_bytes=binding["kv_budget_bytes"],
        kv_bytes_needed=needed,
        kv_cache_blocks=blocks,
        kv_capacity_tokens=capacity,
        max_concurrency=round(concurrency, 2),
        max_full_sequences=full_sequences,
        notes=notes,
        stages=stages if pp > 1 else [],
    )
    return plan


def _grouped_layout(shape: ModelShape, inputs: PlanInputs, stages: List[Dict[str, int]], kv_bytes: int,
                    block_size: int, max_len: int, overhead: Optional[StartupOverhead]) -> Optional[KvLayout]:
    """vLLM's KV cache groups for models with sliding-window or state layers; None for full attention only."""
    if not shape.layer_kinds or all(kind == FULL for kind in shape.layer_kinds):
        return None
    pp = inputs.pipeline_parallel_size
    per_token = layer_bytes_per_token(shape.num_kv_heads, shape.head_dim, kv_bytes, inputs.tensor_parallel_size,
                                      shape.mla)
    tokens = overhead.max_num_batched_tokens if overhead else CPU_BATCHED_TOKENS
    layouts, start = [], 0
    for stage in stages:
        layers = list(range(start, start + stage["layers"]))
        start += stage["layers"]
        layouts.append(kv_layout(
            shape.layer_kinds, shape.layer_windows, per_token, block_size, max_len, tokens,
            max(0, stage["kv_budget_bytes"]),
            # Async scheduling keeps two batches in flight; pipeline stages one more each.
            max_concurrent_batches=2 if pp == 1 else pp + 1,
            stage_layers=layers if pp > 1 else None,
            # vLLM's CPU build turns the hybrid KV cache manager off.
            hybrid_kv_cache_manager=inputs.device == "cuda",
            sliding_block_size=CUDA_BLOCK_SIZE if inputs.device == "cuda" else None))
    return min(layouts, key=lambda layout: layout.num_blocks)


def _fits(model: _Model, inputs: PlanInputs) -> bool:
    return _plan(model, inputs).ok


def _largest_len(model: _Model, inputs: PlanInputs, sequences: int) -> int:
    """Largest max_model_len up to the model's limit for ``sequences`` full sequences, 0 if none."""
    plan = _plan(model, replace(inputs, max_model_len=None))
    if plan.verdict == "weights_do_not_fit":
        return 0
    if any(kind != FULL for kind in model.shape.layer_kinds):
        # Sliding layers cost less per token as the context grows: search as vLLM does.
        low, high = 0, plan.model_max_len
        while low < high:
            mid = (low + high + 1) // 2
            if _plan(model, replace(inputs, max_model_len=mid)).max_full_sequences >= sequences:
                low = mid
            else:
                high = mid - 1
        return low if low >= plan.model_max_len else _friendly_floor(low, plan.block_size)
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
    need = (plan.weight_bytes_per_gpu + inputs.reserve_mib * MiB + plan.overhead["charged_bytes"]
            + (_cdiv(plan.max_model_len, plan.block_size) + 1) * block_bytes)
    util = math.ceil(need / total * 100 - 1e-9) / 100
    # The closed form ignores per-stage differences: confirm by re-planning.
    for _attempt in range(5):
        if util > utilization_ceiling(inputs.gpu_memory_total_mib, plan.overhead["context_bytes"]):
            return None
        if _fits(model, replace(inputs, gpu_memory_utilization=util)):
            return util
        util = round(util + 0.01, 2)
    return None


def _smallest_tp(model: _Model, inputs: PlanInputs) -> Tuple[Optional[int], Optional[float]]:
    """Fewest GPUs that fit, and the utilization to lower to where NCCL's buffers need the room."""
    for tp in TP_CANDIDATES:
        if tp <= inputs.tensor_parallel_size or model.shape.num_heads % tp:
            continue
        candidate = replace(inputs, tensor_parallel_size=tp)
        plan = _plan(model, candidate)
        if plan.verdict == "utilization_too_high":
            ceiling = utilization_ceiling(inputs.gpu_memory_total_mib, plan.overhead["context_bytes"])
            if ceiling > 0 and _fits(model, replace(candidate, gpu_memory_utilization=ceiling)):
                return tp, ceiling
        elif plan.ok:
            return tp, None
    return None, None


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
        out["gpu_memory_utilization_cap"] = min(inputs.max_gpu_memory_utilization,
                                                utilization_ceiling(inputs.gpu_memory_total_mib,
                                                                     plan.overhead["context_bytes"]))
        out["gpu_memory_utilization"] = util if util is not None and util <= out["gpu_memory_utilization_cap"] \
            else None
        tp, tp_util = (inputs.tensor_parallel_size, None) if plan.ok else _smallest_tp(model, inputs)
        out["tensor_parallel_size"], out["tensor_parallel_gpu_memory_utilization"] = tp, tp_util
        out["kv_cache_dtype"] = "fp8" if (plan.verdict == "does_not_fit" and plan.kv_cache_dtype_bytes > 1
                                          and _fits(model, replace(inputs, kv_cache_dtype="fp8"))) else None
    else:
        need = (_cdiv(plan.max_model_len, plan.block_size) + 1) * plan.block_size * plan.kv_bytes_per_token_per_gpu
        out["cpu_kvcache_space_gib"] = max(1, _cdiv(need, GiB))
    return out


def _finish(model: _Model, inputs: PlanInputs, plan: MemoryPlan) -> MemoryPlan:
    plan.suggestions = _suggest(model, inputs, plan)
    if plan.ok:
        plan.message = f"vllm_max_model_len={plan.max_model_len} fits: " + ok_message(plan)
    else:
        plan.message = describe(plan)
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
    validate_inputs(inputs)
    ceiling = min(inputs.max_model_len or model.shape.model_max_len, model.shape.model_max_len)
    sequences = inputs.max_num_seqs or 1
    notes: List[str] = []

    def length_at(candidate: PlanInputs) -> int:
        return min(ceiling, _largest_len(model, candidate, sequences))

    if inputs.device == "cuda":
        probe = _plan(model, replace(inputs, max_model_len=ceiling))
        highest = utilization_ceiling(inputs.gpu_memory_total_mib, probe.overhead["context_bytes"])
        if inputs.gpu_memory_utilization > highest:
            notes.append(f"Auto mode lowered vllm_gpu_memory_utilization from {inputs.gpu_memory_utilization} to "
                         f"{highest}: vLLM refuses more than is free after CUDA's context.")
            inputs = replace(inputs, gpu_memory_utilization=highest)
        inputs = replace(inputs, max_gpu_memory_utilization=min(inputs.max_gpu_memory_utilization, highest))
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
                        f"{model.shape.model_max_len}): " + ok_message(plan))
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
