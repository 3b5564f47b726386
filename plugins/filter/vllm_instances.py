"""Filters that turn vllm_instances into complete, checked unit settings."""

from __future__ import annotations

from typing import Any, Callable

from ansible_collections.gpufleet.vllm.plugins.module_utils.vllm_instances import (
    apply_plans,
    instance_problems,
    resolve_instances,
    server_args,
    systemd_quote,
)

DOCUMENTATION = r"""
name: vllm_resolve_instances
short_description: Fill vllm_instances from the role's defaults
version_added: 0.1.0
description:
  - Merges each instance with the vllm_* defaults and derives the model's path on the host.
  - Companion filters C(vllm_instance_problems), C(vllm_apply_plans), C(vllm_server_args) and C(systemd_quote) live in the same file.
positional: defaults, model_dir
options:
  _input:
    description: The vllm_instances list.
    type: list
    elements: dict
    required: true
  defaults:
    description: Values for keys an instance leaves out, keyed without the vllm_ prefix.
    type: dict
    required: true
  model_dir:
    description: Directory on the host where models are staged.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Resolve the instances
  ansible.builtin.set_fact:
    resolved: "{{ vllm_instances | gpufleet.vllm.vllm_resolve_instances({'port': 8000}, '/var/lib/vllm/models') }}"
"""

RETURN = r"""
_value:
  description: One dict per instance with every key filled, plus model_kind, model_path and origins.
  type: list
  elements: dict
"""


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "vllm_resolve_instances": resolve_instances,
            "vllm_apply_plans": apply_plans,
            "vllm_instance_problems": instance_problems,
            "vllm_server_args": server_args,
            "systemd_quote": systemd_quote,
        }
