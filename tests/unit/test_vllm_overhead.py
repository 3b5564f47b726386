"""The planner against what vLLM 0.26.0 measured on an H100 for the shapes tests/gpu serves."""

from __future__ import annotations

import importlib.util
import json
import os
from typing import Any, Dict

import pytest

from ansible_collections.gpufleet.vllm.plugins.module_utils import memory_plan as mp
from ansible_collections.gpufleet.vllm.plugins.module_utils.vllm_overhead import batch_defaults

HERE = os.path.dirname(__file__)
MEASURED = json.load(open(os.path.join(HERE, "data", "vllm-0.26.0-h100-startup.json"), encoding="utf-8"))
_spec = importlib.util.spec_from_file_location("gpu_shapes", os.path.join(HERE, "..", "gpu", "shapes.py"))
shapes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(shapes)  # type: ignore[union-attr]


def plan_run(run: Dict[str, Any], **overrides: Any) -> mp.MemoryPlan:
    cfg = shapes.SHAPES[run["shape"]]
    settings = dict(gpu_memory_total_mib=MEASURED["gpu_memory_total_mib"], gpu_name=MEASURED["gpu_name"],
                    gpu_memory_utilization=run["gpu_memory_utilization"], max_model_len=run.get("max_model_len"),
                    max_num_batched_tokens=run.get("max_num_batched_tokens"), max_num_seqs=run.get("max_num_seqs"))
    settings.update(overrides)
    return mp.plan_memory(cfg, shapes.weight_bytes(cfg), **settings)


@pytest.mark.parametrize("run", MEASURED["runs"], ids=lambda r: "{shape}-{gpu_memory_utilization}-{t}-{s}".format(
    t=r.get("max_num_batched_tokens", "dflt"), s=r.get("max_num_seqs", "dflt"), **r))
def test_kv_tokens_match_vllm_within_half_a_percent(run: Dict[str, Any]) -> None:
    plan = plan_run(run)
    assert plan.verdict == "ok"
    assert abs(plan.kv_capacity_tokens / run["kv_tokens"] - 1) < 0.005, plan.kv_capacity_tokens


@pytest.mark.parametrize("run", MEASURED["runs"], ids=lambda r: r["shape"])
def test_modelled_activation_peak_is_near_vllms(run: Dict[str, Any]) -> None:
    overhead = plan_run(run).overhead
    # The peak moves from the sampler pass to the forward pass as batched tokens grow.
    assert abs(overhead["activation_bytes"] / mp.GiB - run["activation_gib"]) < 0.11


def test_an_over_one_percent_error_would_fail_the_comparison() -> None:
    run = MEASURED["runs"][0]
    # 1% of the 8B model's KV cache is about 0.55 GiB: a reserve that size moves the plan off the measurement.
    plan = plan_run(run, reserve_mib=560)
    assert abs(plan.kv_capacity_tokens / run["kv_tokens"] - 1) > 0.005


def test_vllm_batch_defaults_follow_the_gpu() -> None:
    assert batch_defaults(81079, "NVIDIA H100 80GB HBM3", huge_tier=False) == (8192, 1024)
    assert batch_defaults(81079, "NVIDIA A100-SXM4-80GB", huge_tier=False) == (2048, 256)
    assert batch_defaults(23034, "NVIDIA A10G", huge_tier=False) == (2048, 256)
    assert batch_defaults(183359, "NVIDIA B200", huge_tier=True) == (16384, 1024)
    assert batch_defaults(183359, "NVIDIA B200", huge_tier=False) == (8192, 1024)


def test_utilization_above_what_cuda_leaves_free_is_refused_like_vllm() -> None:
    run = MEASURED["runs"][0]
    # vLLM logged 78.66 of 79.18 GiB free at start: 0.99 x 79.18 GiB is more than that.
    plan = plan_run(run, gpu_memory_utilization=0.995)
    assert plan.verdict == "utilization_too_high"
    assert "Fix: set vllm_gpu_memory_utilization to 0.99 or less" in plan.message
    assert "Free memory on device" in plan.message
    auto, failure = mp.plan_for_mode("auto", shapes.SHAPES[run["shape"]], shapes.weight_bytes(shapes.SHAPES[run["shape"]]),
                                     gpu_memory_total_mib=81079, gpu_memory_utilization=0.999, raise_utilization=True,
                                     max_gpu_memory_utilization=1.0)
    assert failure is None and auto.gpu_memory_utilization == 0.99


def test_release_that_charges_cuda_graphs_leaves_less_kv_cache() -> None:
    run = MEASURED["runs"][0]
    measured_release = plan_run(run)
    newer = plan_run(run, cudagraph_in_budget=True)
    assert newer.overhead["cudagraph_charged"] and not measured_release.overhead["cudagraph_charged"]
    # vLLM 0.26 captured 0.98 GiB of CUDA graphs for this model; the estimate sits near it.
    assert abs(newer.overhead["cudagraph_bytes"] / mp.GiB - 0.98) < 0.05
    assert newer.kv_capacity_tokens < measured_release.kv_capacity_tokens


def test_moe_models_on_vllms_older_runner_are_charged_cuda_graphs() -> None:
    mixtral = dict(shapes.SHAPES["llama3.1-8b"], architectures=["MixtralForCausalLM"], model_type="mixtral",
                   num_local_experts=8, num_experts_per_tok=2)
    qwen_moe = dict(mixtral, architectures=["Qwen2MoeForCausalLM"])
    assert mp.plan_memory(mixtral, gpu_memory_total_mib=81079).overhead["cudagraph_charged"]
    assert not mp.plan_memory(qwen_moe, gpu_memory_total_mib=81079).overhead["cudagraph_charged"]
