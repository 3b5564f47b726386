"""Filters for the ray_cluster role; the logic lives in module_utils/ray_status.py (unit-tested)."""

from __future__ import annotations

from typing import Any, Callable

from ansible_collections.gpufleet.vllm.plugins.module_utils.ray_status import (
    cluster_problems,
    parse_ray_status,
)

DOCUMENTATION = r"""
name: ray_status
short_description: Read the output of C(ray status) into nodes and resource totals
version_added: 0.1.0
description:
  - Returns C(ready) (the head has published a status), C(active) (count), C(active_nodes), C(pending_nodes),
    C(failures) and C(resources) (per resource C(used) and C(total), e.g. C(CPU), C(GPU)).
  - The companion filter C(ray_cluster_problems) (same file) lists why a parsed status does not show the
    expected nodes and GPUs; empty when it does.
options:
  _input:
    description: Standard output of C(ray status --address HEAD:PORT).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Count the cluster's nodes
  ansible.builtin.debug:
    msg: "{{ (ray_status_output.stdout | gpufleet.vllm.ray_status).active }} nodes"

- name: Check the cluster
  ansible.builtin.assert:
    that: (ray_status_output.stdout | gpufleet.vllm.ray_status | gpufleet.vllm.ray_cluster_problems(2, 16)) | length == 0
"""

RETURN = r"""
_value:
  description: The parsed status.
  type: dict
"""


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "ray_status": parse_ray_status,
            "ray_cluster_problems": cluster_problems,
        }
