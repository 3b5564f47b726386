"""What vLLM measures at start-up besides weights and KV cache, per GPU.

vLLM sizes its KV cache as ``ceil(total x gpu_memory_utilization)`` minus
what a profiling pass costs (``vllm/v1/worker/gpu_worker.py``,
``determine_available_memory``): the torch peak of one forward pass over
``max_num_batched_tokens`` dummy tokens and one sampler pass over
``max_num_seqs`` dummy sequences, the memory allocated outside torch meanwhile
(cuBLAS workspaces, kernel modules), and, from vLLM 0.32 on (and in 0.26 for
models on the older model runner: MoE models, Mamba hybrids), an estimate of
the CUDA graphs it is about to capture.

The terms follow the code; their constants were measured on an H100 80GB with
vLLM 0.26.0 and random-weight models of Llama-3.1-8B's and
DeepSeek-R1-Distill-Qwen-1.5B's shapes at 2048, 8192 and 16384 batched tokens
and 256 and 1024 sequences (docs/gpu.md). The CUDA graph estimate is modelled
from the sizes vLLM 0.26 captured, not measured on a release that subtracts it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Tuple

from ansible_collections.gpufleet.vllm.plugins.module_utils.model_config import STATE, ModelShape
from ansible_collections.gpufleet.vllm.plugins.module_utils.param_estimate import EXPERT_KEYS

MiB = 1024 ** 2
GiB = 1024 ** 3

# Memory CUDA itself takes before vLLM's start-up snapshot (context, cuBLAS
# handles): 0.52 GiB on the H100 (vLLM's "Free memory on device (78.66/79.18
# GiB) on startup"), rounded up. vLLM refuses to start when the free memory
# left is below utilization x total.
CUDA_CONTEXT_MIB = 540
# NCCL's and custom all-reduce's buffers for tensor parallelism, allocated before
# that snapshot too: 1.53 GiB was in use at start on each H200 of a TP=2 server.
NCCL_CONTEXT_MIB = 1040
# vLLM's "non-torch memory" during profiling: 0.22 GiB logged for both shapes measured,
# plus 20 MiB for what varied between runs (16 MiB at utilization 0.25).
NON_TORCH_MIB = 245
# vLLM's sampler pass over max_num_seqs dummy sequences: measured 244 bytes per
# sequence per hidden unit (0.95 GiB for an 8B model at 1024 sequences).
SAMPLER_BYTES_PER_SEQ_PER_HIDDEN = 244
# vLLM's defaults when --max-num-batched-tokens / --max-num-seqs are not given
# (vllm/engine/arg_utils.py, OpenAI server): GPUs of at least 70 GiB that are
# not A100s get 8192 tokens and 1024 sequences, others 2048 and 256; from 0.32
# GPUs of at least 160 GiB get 16384 and 1024.
LARGE_GPU_GIB = 70
HUGE_GPU_GIB = 160
# CUDA graphs as vLLM 0.26 captured them (1024 sequences, sizes up to 512):
# 0.50 GiB for 28 layers of hidden 1536, 0.98 GiB for 32 layers of hidden 4096.
CUDAGRAPH_BASE_GIB = 0.266
CUDAGRAPH_GIB_PER_LAYER_HIDDEN = 5.45e-6


@dataclass(frozen=True)
class StartupOverhead:
    """Bytes per GPU vLLM subtracts from its budget before the KV cache."""

    max_num_batched_tokens: int
    max_num_seqs: int
    forward_bytes: int
    sampler_bytes: int
    activation_bytes: int
    rope_cache_bytes: int
    non_torch_bytes: int
    cudagraph_bytes: int
    cudagraph_charged: bool
    context_bytes: int

    @property
    def charged_bytes(self) -> int:
        """What comes off the KV budget."""
        return (self.activation_bytes + self.rope_cache_bytes + self.non_torch_bytes
                + (self.cudagraph_bytes if self.cudagraph_charged else 0))

    def as_dict(self) -> Dict[str, Any]:
        out = asdict(self)
        out["charged_bytes"] = self.charged_bytes
        return out


def utilization_ceiling(total_mib: Optional[int], context_bytes: int) -> float:
    """The most vLLM accepts: utilization x total must fit in what is free after CUDA's context."""
    total = int(total_mib or 0) * MiB
    return math.floor((total - context_bytes) / total * 100) / 100


def batch_defaults(gpu_memory_mib: int, gpu_name: str, huge_tier: bool) -> Tuple[int, int]:
    """vLLM's (max_num_batched_tokens, max_num_seqs) for its OpenAI server on this GPU."""
    gib = gpu_memory_mib * MiB / GiB
    if huge_tier and gib >= HUGE_GPU_GIB:
        return 16384, 1024
    if gib >= LARGE_GPU_GIB and "a100" not in gpu_name.lower():
        return 8192, 1024
    return 2048, 256


def _mlp_width(cfg: Dict[str, Any], shape: ModelShape) -> int:
    """Intermediate activations per token: the dense MLP, or the experts a token visits."""
    experts_per_token = cfg.get("num_experts_per_tok") or cfg.get("moe_topk") or cfg.get("top_k")
    expert_inter = cfg.get("moe_intermediate_size")
    if experts_per_token and expert_inter:
        shared = int(cfg.get("n_shared_experts") or 0) * int(expert_inter)
        shared += int(cfg.get("shared_expert_intermediate_size") or 0)
        return int(experts_per_token) * int(expert_inter) + shared
    return shape.intermediate_size


def startup_overhead(cfg: Dict[str, Any], shape: ModelShape, dtype_bytes: int, tp: int, *,
                     gpu_memory_mib: int, gpu_name: str = "", max_num_batched_tokens: Optional[int] = None,
                     max_num_seqs: Optional[int] = None, max_model_len: int, cudagraph_charged: bool,
                     huge_tier: bool) -> StartupOverhead:
    """Model vLLM's profiling pass for one GPU of a tensor-parallel group."""
    default_tokens, default_seqs = batch_defaults(gpu_memory_mib, gpu_name, huge_tier)
    seqs = max_num_seqs or default_seqs
    tokens = max_num_batched_tokens or default_tokens
    # vLLM: max_num_batched_tokens <= max_num_seqs x max_model_len; seqs <= tokens.
    tokens = min(tokens, seqs * max_model_len)
    seqs = min(seqs, tokens)
    h = shape.hidden_size
    q = shape.num_heads * shape.head_dim
    kv = shape.num_kv_heads * shape.head_dim
    # Forward pass without attention: residual and normed input (full width on
    # every rank), q/k/v and the gated MLP's gate_up and activation (split by TP).
    forward = tokens * dtype_bytes * (2 * h + (q + 2 * kv + 3 * _mlp_width(cfg, shape)) // tp)
    # Sampler pass: logits and sampling state per sequence, with the hidden
    # states of every token still alive (and their gathered copy).
    sampler = seqs * h * SAMPLER_BYTES_PER_SEQ_PER_HIDDEN + 2 * dtype_bytes * h * tokens
    # Rotary embedding cache, float32, allocated while the weights load.
    rope = 0 if shape.mla else int(cfg.get("max_position_embeddings") or shape.model_max_len) * shape.head_dim * 4
    graph_scale = 0.3 + 0.7 * min(seqs, 512) / 512
    cudagraphs = int((CUDAGRAPH_BASE_GIB + CUDAGRAPH_GIB_PER_LAYER_HIDDEN * shape.num_layers * h) * graph_scale * GiB)
    return StartupOverhead(
        max_num_batched_tokens=tokens,
        max_num_seqs=seqs,
        forward_bytes=int(forward),
        sampler_bytes=int(sampler),
        activation_bytes=int(max(forward, sampler)),
        rope_cache_bytes=int(rope),
        non_torch_bytes=NON_TORCH_MIB * MiB,
        cudagraph_bytes=cudagraphs,
        cudagraph_charged=cudagraph_charged,
        context_bytes=(CUDA_CONTEXT_MIB + (NCCL_CONTEXT_MIB if tp > 1 else 0)) * MiB,
    )


# MoE architectures vLLM 0.26 runs on its newer model runner, which does not
# charge CUDA graphs to the KV budget; other MoE models and state-space hybrids
# use the older runner, which does (vllm/config/vllm.py).
V2_RUNNER_MOE_ARCHITECTURES = ("DeepseekV2ForCausalLM", "GraniteMoeForCausalLM", "InklingForCausalLM",
                               "InklingForConditionalGeneration", "LongcatFlashNgramForCausalLM",
                               "Qwen2MoeForCausalLM")


def cudagraph_charged(config: Dict[str, Any], cfg: Dict[str, Any], shape: ModelShape, in_budget: bool) -> bool:
    """Whether this release and model put vLLM's CUDA graph estimate on the KV budget."""
    if in_budget:
        return True
    moe = any(cfg.get(k) for k in EXPERT_KEYS)
    architectures = config.get("architectures") or []
    hybrid = STATE in shape.layer_kinds
    return hybrid or (moe and not any(a in V2_RUNNER_MOE_ARCHITECTURES for a in architectures))
