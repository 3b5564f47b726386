"""Read the output of ``ray status`` into nodes and resource totals.

``ray status`` talks to the head's GCS only, so it works with the minimal
``ray`` install (no dashboard) that vLLM needs. Its text is the one interface
that is stable across Ray 2.x releases; this parser reads the sections it has
printed since 2.0 and ignores anything else.
"""

from __future__ import annotations

import re
from typing import Any

_SECTION_RE = re.compile(r"^(Active|Pending|Recent failures|Total Usage|Usage):\s*$")
_NODE_RE = re.compile(r"^\s*(\d+)\s+(\S+)\s*$")
_USAGE_RE = re.compile(r"^\s*([0-9.]+)([A-Za-z]*)/([0-9.]+)([A-Za-z]*)\s+(\S+)\s*$")


def parse_ray_status(text: str) -> dict[str, Any]:
    """Nodes (active, pending, failures) and totals per resource from ``ray status``.

    ``ready`` is false while the head has not published a status yet
    (``No cluster status``), which is what ray prints for a few seconds after start.
    """
    result: dict[str, Any] = {
        "ready": False,
        "active_nodes": [],
        "pending_nodes": [],
        "failures": [],
        "resources": {},
    }
    section = ""
    for raw in (text or "").splitlines():
        line = raw.rstrip()
        if line.startswith("Node: "):
            break  # --verbose per-node detail follows; the totals above suffice
        if not line.startswith(" "):
            header = _SECTION_RE.match(line)
            section = header.group(1) if header else ""
            result["ready"] = result["ready"] or section == "Active"
            continue
        entry = line.strip()
        if entry.startswith("(") and entry.endswith(")"):
            continue  # "(no pending nodes)", "(no failures)"
        if section in ("Active", "Pending"):
            node = _NODE_RE.match(entry)
            if node:
                key = "active_nodes" if section == "Active" else "pending_nodes"
                result[key].extend([node.group(2)] * int(node.group(1)))
        elif section == "Recent failures":
            result["failures"].append(entry)
        elif section == "Total Usage":
            usage = _USAGE_RE.match(entry)
            if usage:
                unit = usage.group(4) or usage.group(2)
                result["resources"][usage.group(5)] = {
                    "used": float(usage.group(1)),
                    "total": float(usage.group(3)),
                    **({"unit": unit} if unit else {}),
                }
    result["active"] = len(result["active_nodes"])
    return result


def cluster_problems(status: dict[str, Any], expected_nodes: int, expected_gpus: float = 0) -> list[str]:
    """Why the cluster is not what the inventory asks for; empty when it is."""
    problems = []
    if not status.get("ready"):
        problems.append("the head has not published a cluster status yet")
        return problems
    active = int(status.get("active", 0))
    if active != expected_nodes:
        problems.append(f"{active} of {expected_nodes} nodes are active")
    gpus = float(status.get("resources", {}).get("GPU", {}).get("total", 0))
    if expected_gpus and gpus < expected_gpus:
        problems.append(f"the cluster has {gpus:g} GPUs, {expected_gpus:g} expected")
    return problems
