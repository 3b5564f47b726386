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
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Dict, List, Optional, Tuple, Union

from ansible_collections.gpufleet.vllm.plugins.module_utils.kv_cache_layout import (
    KvLayout,
    kv_layout,
    layer_bytes_per_token,
)
from ansible_collections.gpufleet.vllm.plugins.module_utils.model_config import (
    FULL,
    STATE,
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
from ansible_collections.gpufleet.vllm.plugins.module_utils.param_estimate import (
    EXPERT_KEYS,
    _linear_bytes,
    _stage_params,
    estimate_parameters,
    pp_partitions,
)
from ansible_collections.gpufleet.vllm.plugins.module_utils.vllm_overhead import (
    StartupOverhead,
    startup_overhead,
)

__all__ = [
    "GiB", "MiB", "MemoryPlan", "ModelShape", "PlanInputs", "WeightFiles", "auto_plan", "estimate_parameters",
    "model_shape", "plan_for_mode", "plan_memory", "pp_partitions", "read_weight_files", "weight_bytes_from_dir",
]

GiB = 1024 ** 3
# tensor_parallel_size values the planner suggests, smallest first.
TP_CANDIDATES = (1, 2, 4, 8, 16, 32, 64)

# Memory kept back beyond what vLLM itself measures at start (vllm_overhead.py
# models that): other processes on the GPU, or a safety margin of your own.
DEFAULT_RESERVE_MIB = 0
# Above this vLLM leaves too little for the CUDA context and other processes.
DEFAULT_MAX_GPU_MEMORY_UTILIZATION = 0.95
# Auto mode refuses to pick a context shorter than this (or the model's own).
DEFAULT_AUTO_MIN_MODEL_LEN = 2048
# vLLM's CacheConfig.DEFAULT_BLOCK_SIZE on CUDA; the CPU platform switches to
# 128 unless the model uses MLA (its CPU kernel only compiles with 16).
CUDA_BLOCK_SIZE = 16
CPU_BLOCK_SIZE = 128
CPU_MLA_BLOCK_SIZE = 16
# vLLM's CPU build batches this many tokens by default (its OpenAI server).
CPU_BATCHED_TOKENS = 2048

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
VERDICTS: Tuple[str, ...] = ("ok", "does_not_fit", "weights_do_not_fit", "exceeds_model_limit",
                             "utilization_too_high")
# MoE architectures vLLM 0.26 runs on its newer model runner, which does not
# charge CUDA graphs to the KV budget; other MoE models and state-space hybrids
# use the older runner, which does (vllm/config/vllm.py).
V2_RUNNER_MOE_ARCHITECTURES = ("DeepseekV2ForCausalLM", "GraniteMoeForCausalLM", "InklingForCausalLM",
                               "InklingForConditionalGeneration", "LongcatFlashNgramForCausalLM",
                               "Qwen2MoeForCausalLM")
# vLLM's refusal when the memory is free at start but the KV cache is too small,
# and its V0 wording, which is what most answers on the web quote.
VLLM_REFUSAL = "To serve at least one request with the model's max seq len"
VLLM_V0_REFUSAL = "The model's max seq len (...) is larger than the maximum number of tokens that can be stored in KV cache"
VLLM_FREE_MEMORY_REFUSAL = "Free memory on device ... on startup is less than desired GPU memory utilization"



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
    overhead: Dict[str, Any]
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
    gpu_name: str = ""
    max_num_batched_tokens: Optional[int] = None
    # The vLLM release charges its CUDA graph estimate to the KV budget (0.32+).
    cudagraph_in_budget: bool = False
    # The release gives GPUs of 160 GiB and more larger batch defaults (0.32+).
    huge_gpu_batch_defaults: bool = False
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
        if inputs.max_num_batched_tokens is not None and (not isinstance(inputs.max_num_batched_tokens, int)
                                                          or inputs.max_num_batched_tokens < 1):
            raise ValueError(f"vllm_max_num_batched_tokens={inputs.max_num_batched_tokens!r} must be a positive integer")
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
            cudagraph_charged=_cudagraph_charged(model, inputs), huge_tier=inputs.huge_gpu_batch_defaults)
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


def _cudagraph_charged(model: _Model, inputs: PlanInputs) -> bool:
    """Whether this release and model put vLLM's CUDA graph estimate on the KV budget."""
    if inputs.cudagraph_in_budget:
        return True
    moe = any(model.cfg.get(k) for k in EXPERT_KEYS)
    architectures = model.config.get("architectures") or []
    hybrid = STATE in model.shape.layer_kinds
    return hybrid or (moe and not any(a in V2_RUNNER_MOE_ARCHITECTURES for a in architectures))


def _utilization_ceiling(total_mib: Optional[int], context_bytes: int) -> float:
    """The most vLLM accepts: utilization x total must fit in what is free after CUDA's context."""
    total = int(total_mib or 0) * MiB
    return math.floor((total - context_bytes) / total * 100) / 100


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
        if util > _utilization_ceiling(inputs.gpu_memory_total_mib, plan.overhead["context_bytes"]):
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
            ceiling = _utilization_ceiling(inputs.gpu_memory_total_mib, plan.overhead["context_bytes"])
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
                                                _utilization_ceiling(inputs.gpu_memory_total_mib,
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


def _describe(plan: MemoryPlan) -> str:
    """One paragraph a person can act on; names the vllm_* variables."""
    s = plan.suggestions
    fixes: List[str] = []
    if plan.verdict == "exceeds_model_limit":
        return (f"vllm_max_model_len={plan.max_model_len} exceeds the model's own limit of {plan.model_max_len} "
                f"tokens ({plan.model_max_len_source}); vLLM refuses to start. Fix: set vllm_max_model_len to "
                f"{plan.model_max_len} or less, or leave it unset.")
    if plan.verdict == "utilization_too_high":
        total = (plan.gpu_memory_total_mib or 0) * MiB
        cap = _utilization_ceiling(plan.gpu_memory_total_mib, plan.overhead["context_bytes"])
        return (f"vllm_gpu_memory_utilization={plan.gpu_memory_utilization} asks for {gib(plan.requested_bytes or 0)} of "
                f"the {gib(total)} GPU, but CUDA's own context leaves only about "
                f"{gib(total - plan.overhead['context_bytes'])} free when vLLM starts, so vLLM refuses "
                f"(\"{VLLM_FREE_MEMORY_REFUSAL}\"). Fix: set vllm_gpu_memory_utilization to {cap} or less.")
    if plan.device == "cuda":
        where = (f"{plan.gpu_memory_utilization} x {gib((plan.gpu_memory_total_mib or 0) * MiB)} = "
                 f"{gib(plan.requested_bytes or 0)}")
        if plan.verdict == "weights_do_not_fit":
            head = (f"The weights need {gib(plan.weight_bytes_per_gpu)} per GPU; with {_overhead_text(plan)} that "
                    f"leaves nothing of the {where} that vllm_gpu_memory_utilization={plan.gpu_memory_utilization} "
                    "allows.")
        else:
            head = (f"vllm_max_model_len={plan.max_model_len} needs {gib(plan.kv_bytes_needed)} of KV cache per GPU "
                    f"but only {gib(max(0, plan.kv_budget_bytes))} is left ({where}, minus "
                    f"{gib(plan.weight_bytes_per_gpu)} of weights and {_overhead_text(plan)}); "
                    f"it holds {plan.kv_capacity_tokens:,} tokens, so vLLM would refuse to start "
                    f"(\"{VLLM_REFUSAL} ...\", in vLLM before 0.10: \"{VLLM_V0_REFUSAL}\").")
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
            lower = s.get("tensor_parallel_gpu_memory_utilization")
            fixes.append(f"vllm_tensor_parallel_size to {s['tensor_parallel_size']} "
                         f"({s['tensor_parallel_size']} GPUs"
                         + (f", with vllm_gpu_memory_utilization at most {lower} for NCCL's buffers)" if lower else ")"))
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


def _overhead_text(plan: MemoryPlan) -> str:
    """What vLLM measures at start, as the plan modelled it."""
    o = plan.overhead
    parts = [f"{gib(o['activation_bytes'])} activation peak ({o['max_num_batched_tokens']} batched tokens, "
             f"{o['max_num_seqs']} sequences)", f"{gib(o['non_torch_bytes'] + o['rope_cache_bytes'])} non-torch "
             "and caches"]
    if o["cudagraph_charged"]:
        parts.append(f"{gib(o['cudagraph_bytes'])} of CUDA graphs")
    if plan.reserve_mib:
        parts.append(f"{gib(plan.reserve_mib * MiB)} vllm_memory_reserve_mib")
    return f"{gib(o['charged_bytes'] + (plan.reserve_mib or 0) * MiB)} vLLM measures at start: " + ", ".join(parts)


def _ok_message(plan: MemoryPlan) -> str:
    if plan.device == "cuda":
        space = (f"{gib(plan.kv_budget_bytes)} of KV cache per GPU ({plan.gpu_memory_utilization} x "
                 f"{gib((plan.gpu_memory_total_mib or 0) * MiB)} minus {gib(plan.weight_bytes_per_gpu)} of weights "
                 f"and {_overhead_text(plan)})")
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

    if inputs.device == "cuda":
        probe = _plan(model, replace(inputs, max_model_len=ceiling))
        highest = _utilization_ceiling(inputs.gpu_memory_total_mib, probe.overhead["context_bytes"])
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
