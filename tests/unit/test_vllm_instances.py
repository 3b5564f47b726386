"""vllm_instances resolution, checks and the server command line."""

import shlex

import pytest

from ansible_collections.gpufleet.vllm.plugins.module_utils.vllm_instances import (
    apply_plans,
    instance_problems,
    resolve_instances,
    server_args,
    systemd_quote,
)

DEFAULTS = {
    "model": "Qwen/Qwen2.5-0.5B-Instruct",
    "model_src": "",
    "model_revision": "main",
    "served_model_name": "",
    "host": "127.0.0.1",
    "port": 8000,
    "dtype": "auto",
    "max_model_len": 4096,
    "gpu_memory_utilization": 0.9,
    "max_num_seqs": None,
    "kv_cache_dtype": "auto",
    "tensor_parallel_size": 1,
    "pipeline_parallel_size": 1,
    "trust_remote_code": False,
    "multi_node": False,
    "extra_args": [],
    "environment": {},
    "cpu_kvcache_space_gib": 4,
}
MODEL_DIR = "/var/lib/vllm/models"


def resolve(instances, **overrides):
    return resolve_instances(instances, {**DEFAULTS, **overrides}, MODEL_DIR)


def test_one_item_list_takes_every_default():
    (inst,) = resolve([{"name": "main"}])
    assert inst["port"] == 8000
    assert inst["model_kind"] == "hub"
    assert inst["model_path"] == "/var/lib/vllm/models/Qwen--Qwen2.5-0.5B-Instruct"
    assert inst["served_model_name"] == "Qwen/Qwen2.5-0.5B-Instruct"
    assert instance_problems([inst]) == []


def test_controller_and_host_path_models():
    ctl, local = resolve(
        [
            {"name": "a", "model_src": "/ctl/models/tiny-chat/", "port": 8001},
            {"name": "b", "model": "/srv/models/llama", "port": 8002},
        ]
    )
    assert (ctl["model_kind"], ctl["model_path"], ctl["served_model_name"]) == (
        "controller",
        "/var/lib/vllm/models/tiny-chat",
        "tiny-chat",
    )
    assert (local["model_kind"], local["model_path"], local["served_model_name"]) == (
        "host_path",
        "/srv/models/llama",
        "llama",
    )


def test_port_collision_names_the_instance_variable():
    problems = instance_problems(resolve([{"name": "a"}, {"name": "b", "port": 8000}]))
    assert len(problems) == 1
    assert "vllm_instances[1].port=8000 collides with instance 'a'" in problems[0]


def test_same_port_on_wildcard_and_loopback_collides():
    problems = instance_problems(resolve([{"name": "a", "host": "0.0.0.0"}, {"name": "b"}]))
    assert any("collides" in p for p in problems)


@pytest.mark.parametrize(
    "override, variable",
    [
        ({"gpu_memory_utilization": 1.5}, "vllm_gpu_memory_utilization=1.5"),
        ({"gpu_memory_utilization": 0}, "vllm_gpu_memory_utilization=0"),
        ({"port": 70000}, "vllm_port=70000"),
        ({"tensor_parallel_size": 0}, "vllm_tensor_parallel_size=0"),
        ({"max_model_len": 8}, "vllm_max_model_len=8"),
        ({"dtype": "int4"}, "vllm_dtype='int4'"),
        ({"kv_cache_dtype": "int8"}, "vllm_kv_cache_dtype='int8'"),
        ({"model": "not a repo"}, "vllm_model='not a repo'"),
        ({"model": ""}, "vllm_model is empty"),
        ({"cpu_kvcache_space_gib": 0}, "vllm_cpu_kvcache_space_gib=0"),
        ({"cpu_kvcache_space_gib": 1.5}, "vllm_cpu_kvcache_space_gib=1.5"),
    ],
)
def test_bad_defaults_name_the_role_variable(override, variable):
    problems = instance_problems(resolve([{"name": "main"}], **override))
    assert any(variable in p for p in problems), problems


def test_bad_instance_keys_name_the_list_item():
    problems = instance_problems(
        resolve([{"name": "Main!", "gpu_memory_utilisation": 0.5, "cuda_visible_devices": "zero"}])
    )
    text = " ".join(problems)
    assert "vllm_instances[0].name='Main!'" in text
    assert "unknown keys ['gpu_memory_utilisation']" in text
    assert "vllm_instances[0].cuda_visible_devices='zero'" in text


def test_server_args_carry_memory_flags():
    (inst,) = resolve([{"name": "main", "max_num_seqs": 8, "kv_cache_dtype": "fp8", "extra_args": ["--seed", "1"]}])
    args = server_args(inst, "cuda")
    flags = dict(zip(args, args[1:]))
    assert flags["--max-model-len"] == "4096"
    assert flags["--gpu-memory-utilization"] == "0.9"
    assert flags["--max-num-seqs"] == "8"
    assert flags["--kv-cache-dtype"] == "fp8"
    assert args[-2:] == ["--seed", "1"]
    assert "--trust-remote-code" not in args


def test_unset_limits_are_left_to_vllm():
    (inst,) = resolve([{"name": "main"}], max_model_len=None)
    args = server_args(inst, "cuda")
    assert "--max-model-len" not in args and "--max-num-seqs" not in args


@pytest.mark.parametrize("arg", ["plain", "with space", 'quote"d', "100%", "$HOME", "back\\slash"])
def test_systemd_quote_round_trips_through_shell_style_splitting(arg):
    quoted = systemd_quote(arg)
    # systemd doubles % and $; undo that, then split like systemd does for quotes.
    assert shlex.split(quoted.replace("%%", "%").replace("$$", "$"))[0] == arg


def test_auto_plans_replace_memory_flags_and_check_plans_do_not():
    (inst,) = resolve([{"name": "main"}])
    plans = [{"item": inst, "plan": {"max_model_len": 2048, "gpu_memory_utilization": 0.85, "kv_capacity_tokens": 9}}]
    (auto,) = apply_plans([inst], plans, "auto")
    assert (auto["max_model_len"], auto["gpu_memory_utilization"]) == (2048, 0.85)
    assert auto["memory_plan"]["kv_capacity_tokens"] == 9
    (check,) = apply_plans([inst], plans, "check")
    assert (check["max_model_len"], check["gpu_memory_utilization"]) == (4096, 0.9)
    (off,) = apply_plans([inst], [], "off")
    assert off["memory_plan"] is None


def test_numbers_given_as_strings_are_accepted():
    (inst,) = resolve([{"name": "main", "port": "8001"}], max_model_len="4096", gpu_memory_utilization="0.8")
    assert (inst["port"], inst["max_model_len"], inst["gpu_memory_utilization"]) == (8001, 4096, 0.8)
    assert instance_problems([inst]) == []
    (bad,) = resolve([{"name": "main", "port": "eighty"}])
    assert any("vllm_instances[0].port='eighty'" in p for p in instance_problems([bad]))


def test_a_multi_node_instance_runs_on_ray_with_pipeline_stages_across_hosts():
    (inst,) = resolve([{"name": "big", "multi_node": "true", "tensor_parallel_size": 8, "pipeline_parallel_size": 2}])
    assert inst["multi_node"] is True
    assert instance_problems([inst]) == []
    args = server_args(inst, "cuda")
    assert args[args.index("--distributed-executor-backend") + 1] == "ray"
    assert args[args.index("--tensor-parallel-size") + 1] == "8"
    assert args[args.index("--pipeline-parallel-size") + 1] == "2"
    (single,) = resolve([{"name": "one"}])
    assert "--distributed-executor-backend" not in server_args(single, "cuda")


def test_multi_node_must_be_a_boolean():
    (inst,) = resolve([{"name": "big", "multi_node": "maybe"}])
    assert instance_problems([inst]) == ["vllm_instances[0].multi_node='maybe' must be true or false."]


@pytest.mark.parametrize("key, value, expected", [
    ("extra_args", "--enforce-eager", "vllm_instances[0].extra_args='--enforce-eager' is a string, not a list"),
    ("environment", "VLLM_LOGGING_LEVEL=DEBUG", "vllm_instances[0].environment='VLLM_LOGGING_LEVEL=DEBUG' is a string, "
                                                "not a mapping"),
])
def test_list_and_mapping_keys_given_as_strings_are_refused_not_iterated(key: str, value: str, expected: str) -> None:
    resolved = resolve([{"name": "main", key: value}])
    problems = instance_problems(resolved)
    assert any(expected in p and "Fix:" in p for p in problems), problems
    # Never split into characters on the command line.
    assert resolved[0]["extra_args"] == [] and resolved[0]["environment"] == {}
