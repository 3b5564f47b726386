"""What a memory plan tells a person: the verdict's paragraph, naming the vllm_* variables to change.

Kept apart from the arithmetic in memory_plan.py: wording changes for readers,
the plan changes with vLLM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, List

from ansible_collections.gpufleet.vllm.plugins.module_utils.vllm_overhead import utilization_ceiling

if TYPE_CHECKING:  # the plan imports this module; the type is for readers only
    from ansible_collections.gpufleet.vllm.plugins.module_utils.memory_plan import MemoryPlan

MiB = 1024 ** 2
GiB = 1024 ** 3

# vLLM's refusal when the memory is free at start but the KV cache is too small,
# and its V0 wording, which is what most answers on the web quote.
VLLM_REFUSAL = "To serve at least one request with the model's max seq len"
VLLM_V0_REFUSAL = "The model's max seq len (...) is larger than the maximum number of tokens that can be stored in KV cache"
VLLM_FREE_MEMORY_REFUSAL = "Free memory on device ... on startup is less than desired GPU memory utilization"


def gib(value: float) -> str:
    """Bytes for people: GiB, or MiB/KiB where GiB would print 0.00."""
    if abs(value) >= GiB / 100 or value == 0:
        return f"{value / GiB:.2f} GiB"
    if abs(value) >= MiB / 100:
        return f"{value / MiB:.2f} MiB"
    return f"{value / 1024:.2f} KiB"


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


def describe(plan: MemoryPlan) -> str:
    """One paragraph a person can act on; names the vllm_* variables."""
    s = plan.suggestions
    fixes: List[str] = []
    if plan.verdict == "exceeds_model_limit":
        return (f"vllm_max_model_len={plan.max_model_len} exceeds the model's own limit of {plan.model_max_len} "
                f"tokens ({plan.model_max_len_source}); vLLM refuses to start. Fix: set vllm_max_model_len to "
                f"{plan.model_max_len} or less, or leave it unset.")
    if plan.verdict == "utilization_too_high":
        total = (plan.gpu_memory_total_mib or 0) * MiB
        cap = utilization_ceiling(plan.gpu_memory_total_mib, plan.overhead["context_bytes"])
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


def ok_message(plan: MemoryPlan) -> str:
    if plan.device == "cuda":
        space = (f"{gib(plan.kv_budget_bytes)} of KV cache per GPU ({plan.gpu_memory_utilization} x "
                 f"{gib((plan.gpu_memory_total_mib or 0) * MiB)} minus {gib(plan.weight_bytes_per_gpu)} of weights "
                 f"and {_overhead_text(plan)})")
    else:
        space = f"vllm_cpu_kvcache_space_gib={plan.cpu_kvcache_space_gib}"
    return (f"{space} holds {plan.kv_capacity_tokens:,} tokens, {plan.max_full_sequences} full-length "
            "sequence(s) at once.")
