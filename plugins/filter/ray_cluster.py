"""Filters for the ray_cluster role; the logic lives in module_utils/ray_status.py (unit-tested).
Each filter is documented in <filter name>.yml beside this file (ansible-doc -t filter).
"""

from __future__ import annotations

from typing import Any, Callable

from ansible_collections.gpufleet.vllm.plugins.module_utils.ray_status import (
    cluster_problems,
    parse_ray_status,
)


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "ray_status": parse_ray_status,
            "ray_cluster_problems": cluster_problems,
        }
