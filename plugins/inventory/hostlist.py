"""Inventory from the host list ops hand over (plain or CSV); rules in module_utils/hostlist.py."""

from __future__ import annotations

import os
from typing import Any

from ansible.errors import AnsibleParserError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.inventory import BaseInventoryPlugin, Constructable
from ansible_collections.gpufleet.vllm.plugins.module_utils.hostlist import (
    HostlistError,
    check_group_name,
    decode_hostlist,
    parse_hostlist,
)

DOCUMENTATION = r"""
name: hostlist
short_description: Hosts from a plain or CSV host list
version_added: 0.1.0
description:
  - "Reads the host list ops hand over, named by a small YAML config file whose name ends in
    C(hostlist.yml) or C(hostlist.yaml) (for example C(gpufleet.hostlist.yml)) and that says
    C(plugin: gpufleet.vllm.hostlist)."
  - "The list is either one host per line or CSV whose first line is a header whose first field is
    C(host) (in any case; the header must then use lower case). A lone C(host) first line is a header,
    so a host named C(host) goes below a header or is written in full (C(host.example.internal)).
    Blank lines and C(#) comments (at the start of a line or after whitespace, outside quotes) are ignored.
    A host is a name, an IPv4 address or an IPv6 address,
    with an optional SSH port: C(name:2222), C(10.0.0.5:2222), C([2001:db8::5]:2222)."
  - "The file must be UTF-8; a byte order mark (Excel's C(CSV UTF-8)) and CRLF line ends are fine.
    A list without any host is an error, so a play cannot succeed on no hosts."
  - "CSV columns: C(host) (first, required), C(group) (an extra group, made a child of O(default_group)),
    C(gpu_type) (sets C(gpufleet_gpu_type)), C(model) (sets C(vllm_model)), C(port) (sets C(vllm_port)),
    and any lower-case variable name starting with C(ansible_), C(gpufleet_), C(vllm_), C(conda_),
    C(cuda_) or C(nvidia_driver_), which sets that host variable. Any other column is an error.
    Empty cells set nothing, so group_vars apply. In those extra columns C(true)/C(false) become booleans
    and whole numbers integers; everything else, decimals included, stays text (C(3.10) is not C(3.1))."
  - Every host is put in O(default_group).
  - Bad lines (duplicate host, malformed name or address, unknown column, bad port, wrong number of
    columns, unterminated quote) fail the source with one error that lists each problem with its line number. Ansible
    only warns about a source that fails to parse and goes on without its hosts unless
    C(unparsed_is_failed) is set in C([inventory]) of ansible.cfg (or C(ANSIBLE_INVENTORY_UNPARSED_FAILED=true)).
extends_documentation_fragment:
  - constructed
options:
  plugin:
    description: Marks the file as this plugin's config.
    type: str
    required: true
    choices:
      - gpufleet.vllm.hostlist
  path:
    description:
      - The host list file. A relative path is relative to the config file's directory; C(~) is expanded.
      - A name ending in C(.csv) must have a CSV header.
    type: str
    required: true
  default_group:
    description: Group that every host joins; each C(group) column value becomes its child.
    type: str
    default: gpu_hosts
"""

EXAMPLES = r"""
# inventories/fleet/gpufleet.hostlist.yml, used as: ansible-playbook -i inventories/fleet/gpufleet.hostlist.yml ...
plugin: gpufleet.vllm.hostlist
path: hosts.csv
default_group: gpu_hosts

# hosts.csv next to it:
#   host,group,gpu_type,model,port
#   gpu-node-01.example.internal,h100,H100-80GB,Qwen/Qwen2.5-7B-Instruct,8000
#   10.20.0.15:2222,l40s,L40S,Qwen/Qwen2.5-1.5B-Instruct,8001

# A plain list works the same way, one host per line:
#   gpu-node-01.example.internal
#   [2001:db8::20]:2222

# The constructed options group hosts further, here by GPU type:
# keyed_groups:
#   - key: gpufleet_gpu_type | default('unknown') | lower | regex_replace('[^a-z0-9_]', '_')
#     prefix: gpu
"""

CONFIG_SUFFIXES: tuple[str, ...] = ("hostlist.yml", "hostlist.yaml")


class InventoryModule(BaseInventoryPlugin, Constructable):
    """Adds the hosts of one host list file to the inventory."""

    NAME = "gpufleet.vllm.hostlist"

    def verify_file(self, path: str) -> bool:
        return bool(super().verify_file(path)) and path.endswith(CONFIG_SUFFIXES)

    def parse(self, inventory: Any, loader: Any, path: str, cache: bool = True) -> None:
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)

        # Relative to the config, not the working directory, so the pair moves together.
        list_path = os.path.join(os.path.dirname(os.path.abspath(path)), os.path.expanduser(self.get_option("path")))
        try:
            default_group = check_group_name(self.get_option("default_group"))
        except ValueError as exc:
            raise AnsibleParserError(f"{path}: default_group: {exc}") from exc
        try:
            with open(list_path, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise AnsibleParserError(
                f"{path}: cannot read the host list {list_path}: {to_native(exc)}. "
                f"Fix: set path: in {path} to the host list (relative to that file's directory)"
            ) from exc
        try:
            text = decode_hostlist(data, source=list_path)
            entries = parse_hostlist(text, source=list_path, require_header=list_path.endswith(".csv"))
        except HostlistError as exc:
            raise AnsibleParserError(str(exc)) from exc

        strict = self.get_option("strict")
        self.inventory.add_group(default_group)
        for entry in entries:
            self.inventory.add_host(entry.name, group=default_group)
            if entry.group and entry.group != default_group:
                self.inventory.add_group(entry.group)
                self.inventory.add_child(default_group, entry.group)
                self.inventory.add_host(entry.name, group=entry.group)
            for name, value in entry.variables.items():
                self.inventory.set_variable(entry.name, name, value)
            hostvars = self.inventory.get_host(entry.name).get_vars()
            self._set_composite_vars(self.get_option("compose"), hostvars, entry.name, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), hostvars, entry.name, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, entry.name, strict=strict)
