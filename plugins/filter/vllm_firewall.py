"""Filters for the vllm role's ufw rules; the logic lives in module_utils/firewall.py (unit-tested)."""

from __future__ import annotations

from typing import Any, Callable

from ansible_collections.gpufleet.vllm.plugins.module_utils.firewall import (
    desired_rules,
    invalid_networks,
    stale_rules,
)

DOCUMENTATION = r"""
name: vllm_firewall_rules
short_description: The ufw rules that limit the vLLM ports to given source networks
version_added: 0.1.0
description:
  - Returns the rules the vllm role wants, allows first (SSH, then each port from each network), then a deny per port.
  - Each rule is a dict of community.general.ufw options (rule, port, proto, from_ip, comment).
  - Companion filters C(vllm_firewall_stale) (the role's rules on the host that are no longer wanted, from
    C(ufw show added)) and C(vllm_invalid_networks) (entries that are not an address or network) live in the same file.
positional: networks, ssh_port
options:
  _input:
    description: The servers' ports.
    type: list
    elements: int
    required: true
  networks:
    description: Source networks allowed to reach the ports.
    type: list
    elements: str
    required: true
  ssh_port:
    description: SSH port kept open; 0 for none.
    type: int
    required: true
"""

EXAMPLES = r"""
- name: Compute the rules
  ansible.builtin.set_fact:
    rules: "{{ [8000, 8001] | gpufleet.vllm.vllm_firewall_rules(['10.0.0.0/8'], 22) }}"
"""

RETURN = r"""
_value:
  description: community.general.ufw options, one dict per rule, in the order they must apply.
  type: list
  elements: dict
"""


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "vllm_firewall_rules": desired_rules,
            "vllm_firewall_stale": stale_rules,
            "vllm_invalid_networks": invalid_networks,
        }
