"""Filters for the vllm role's ufw rules; the logic lives in module_utils/firewall.py (unit-tested).
Each filter is documented in <filter name>.yml beside this file (ansible-doc -t filter).
"""

from __future__ import annotations

from typing import Any, Callable

from ansible_collections.gpufleet.vllm.plugins.module_utils.firewall import (
    desired_rules,
    invalid_networks,
    stale_rules,
)


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "vllm_firewall_rules": desired_rules,
            "vllm_firewall_stale": stale_rules,
            "vllm_invalid_networks": invalid_networks,
        }
