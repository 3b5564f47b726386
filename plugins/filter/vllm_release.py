"""Filters exposing the vLLM release table to roles.
Each filter is documented in <filter name>.yml beside this file (ansible-doc -t filter).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from ansible.errors import AnsibleFilterError
from ansible_collections.gpufleet.vllm.plugins.module_utils.vllm_releases import (
    python_problem,
    ray_problem,
    release_info,
    release_problem,
)


def vllm_release(package: str, version: str) -> dict[str, Any]:
    try:
        return release_info(str(package), str(version))
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def vllm_release_problem(package: str, version: str) -> str:
    """Empty string when the release table covers the pair, else the message to fail with."""
    return release_problem(str(package), str(version)) or ""


def vllm_python_problem(package: str, version: str, python_version: str) -> Optional[str]:
    """Empty string when the pair installs, else the message to fail with."""
    try:
        return python_problem(str(package), str(version), str(python_version)) or ""
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def vllm_ray_problem(package: str, version: str, ray_version: str) -> str:
    """Empty string when the Ray release can drive the vLLM build across hosts, else the message to fail with."""
    try:
        return ray_problem(str(package), str(version), str(ray_version)) or ""
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "vllm_release": vllm_release,
            "vllm_release_problem": vllm_release_problem,
            "vllm_python_problem": vllm_python_problem,
            "vllm_ray_problem": vllm_ray_problem,
        }
