"""Filters that turn vllm_instances into complete, checked unit settings.
Each filter is documented in <filter name>.yml beside this file (ansible-doc -t filter).
"""

from __future__ import annotations

from typing import Any, Callable

from ansible_collections.gpufleet.vllm.plugins.module_utils.vllm_instances import (
    apply_plans,
    instance_problems,
    resolve_instances,
    server_args,
    systemd_quote,
)


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "vllm_resolve_instances": resolve_instances,
            "vllm_apply_plans": apply_plans,
            "vllm_instance_problems": instance_problems,
            "vllm_server_args": server_args,
            "systemd_quote": systemd_quote,
        }
