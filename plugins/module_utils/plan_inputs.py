"""The inputs and the result of a memory plan: what a caller passes and gets back.

The vLLM flags a plan depends on, their allowed values, and the figures the
module returns; checked here once, before any arithmetic.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.gpufleet.vllm.plugins.module_utils.model_config import ModelShape

# Memory kept back beyond what vLLM itself measures at start (vllm_overhead.py
# models that): other processes on the GPU, or a safety margin of your own.
DEFAULT_RESERVE_MIB = 0
# Above this vLLM leaves too little for the CUDA context and other processes.
DEFAULT_MAX_GPU_MEMORY_UTILIZATION = 0.95

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


def validate_inputs(inputs: PlanInputs) -> None:
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
