"""Pure logic of the fleet report: read a vllm@ unit, summarise a run, render the report.

Used on the hosts by the gpufleet.vllm.vllm_status module (unit parsing) and on the
controller by the fleet_report role's filters (rows, Markdown). No I/O here, so the
unit tests exercise every branch without a host.
"""

from __future__ import annotations

import shlex
from typing import Any, Dict, List, Optional

# Figures of /etc/vllm/<name>.plan.json that the report carries.
PLAN_FIELDS = ("kv_capacity_tokens", "max_model_len", "verdict")

# Column order of the Markdown table: (key in a row, header).
COLUMNS = (
    ("host", "host"),
    ("reachable", "reachable"),
    ("gpu", "GPUs"),
    ("driver", "driver / CUDA"),
    ("vllm", "vLLM"),
    ("instance", "instance"),
    ("model", "model"),
    ("port", "port"),
    ("unit", "unit"),
    ("plan", "plan (KV tokens / max len / verdict)"),
    ("health", "health"),
    ("changed", "changed this run"),
)


def parse_exec_start(line: str) -> Dict[str, Any]:
    """Read python, model, served name, host and port from a unit's ExecStart= value.

    The vllm role writes ExecStart with systemd quoting, which shlex reads for the
    plain paths and flags the role emits.
    """
    value = line.split("=", 1)[1] if line.startswith("ExecStart=") else line
    argv = shlex.split(value)
    found: Dict[str, Any] = {
        "python": argv[0] if argv else "",
        "model": "",
        "served_model_name": "",
        "host": "127.0.0.1",
        "port": None,
        "scheme": "http",
        "args": argv[1:],
    }
    flags = {"--model": "model", "--served-model-name": "served_model_name", "--host": "host", "--port": "port"}
    for index, token in enumerate(argv):
        name, _, inline = token.partition("=")
        if name in flags:
            value_ = inline if inline else (argv[index + 1] if index + 1 < len(argv) else "")
            found[flags[name]] = value_
    if found["port"] is not None:
        try:
            found["port"] = int(found["port"])
        except ValueError:
            found["port"] = None
    if not found["served_model_name"]:
        found["served_model_name"] = found["model"]
    if any(token.partition("=")[0] == "--ssl-certfile" for token in argv):
        found["scheme"] = "https"
    return found


def connect_host(host: str) -> str:
    """The address a local client uses to reach a server listening on ``host``."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    if ":" in host:
        return "[" + host + "]"
    return host


def plan_figures(plan: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """The planner figures the report shows, or an empty dict without a plan."""
    if not plan:
        return {}
    return {key: plan.get(key) for key in PLAN_FIELDS}


def _changed_items(registered: Any) -> List[str]:
    """Names of the loop items that changed in a registered loop result."""
    if not isinstance(registered, dict):
        return []
    names = []
    for index, result in enumerate(registered.get("results", []) or []):
        if isinstance(result, dict) and result.get("changed"):
            item = result.get("item")
            # no_log results may have lost their item; the position still tells them apart.
            name = item.get("name") if isinstance(item, dict) else item
            names.append(str(name) if name is not None else "#%d" % index)
    return names


def summarize_changes(registered: Optional[Dict[str, Any]]) -> List[str]:
    """What a vllm role run changed on one host, from what the role registered.

    ``registered`` maps ``import``, ``units``, ``env_files`` and ``started`` to the
    role's registered results (absent when the role did not run in this invocation).
    Returns short phrases; an empty list means nothing changed.
    """
    if not registered:
        return []
    changes: List[str] = []
    env_check = registered.get("import")
    if isinstance(env_check, dict) and not env_check.get("skipped") and "rc" in env_check:
        version = (env_check.get("stdout") or "").strip()
        changes.append("new env" + (" (vLLM " + version + ")" if version else ""))
    for name in _changed_items(registered.get("units")):
        changes.append("unit " + name)
    for name in _changed_items(registered.get("env_files")):
        changes.append("env file " + name)
    for name in _changed_items(registered.get("started")):
        changes.append("started " + name)
    return changes


def _gpu_summary(gpu: Optional[Dict[str, Any]]) -> Dict[str, str]:
    if not isinstance(gpu, dict) or not gpu.get("available"):
        reason = gpu.get("reason") if isinstance(gpu, dict) else ""
        return {"gpu": "no GPU", "driver": "-", "gpu_reason": reason or "no GPU facts"}
    names: Dict[str, int] = {}
    for card in gpu.get("gpus", []):
        label = "%s %d MiB" % (card.get("name", "?"), int(card.get("memory_total_mib", 0)))
        names[label] = names.get(label, 0) + 1
    summary = ", ".join("%dx %s" % (count, label) for label, count in sorted(names.items()))
    return {
        "gpu": summary or "%d GPU(s)" % int(gpu.get("count", 0)),
        "driver": "%s / %s" % (gpu.get("driver_version") or "?", gpu.get("cuda_version") or "?"),
        "gpu_reason": "",
    }


def _health(instance: Dict[str, Any]) -> str:
    health = instance.get("health") or {}
    if not health.get("ok"):
        return "unhealthy: " + str(health.get("error") or "no answer")
    served = instance.get("served_model_name")
    models = health.get("models")
    if models is None:
        return "healthy (models: " + str(health.get("models_error") or "not read") + ")"
    if served and served not in models:
        return "unhealthy: /v1/models lacks " + served
    return "healthy"


def build_rows(hosts: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """One row per served instance (one per host without instances or unreachable).

    Each item of ``hosts``: name, reachable, unreachable_msg, gpu (gpufleet_gpu facts
    or None), status (vllm_status result or None), changes (list of phrases).
    """
    rows: List[Dict[str, Any]] = []
    for host in hosts:
        base: Dict[str, Any] = {"host": host.get("name", "?"), "reachable": bool(host.get("reachable"))}
        if not base["reachable"]:
            base.update({"status": "unreachable", "error": host.get("unreachable_msg") or "unreachable"})
            rows.append(base)
            continue
        base.update(_gpu_summary(host.get("gpu")))
        base["changed"] = list(host.get("changes") or [])
        status = host.get("status") or {}
        instances = status.get("instances") or []
        if not instances:
            base.update({"status": "no vLLM instances", "error": status.get("msg", "")})
            rows.append(base)
            continue
        for instance in instances:
            row = dict(base)
            healthy = _health(instance)
            row.update({
                "instance": instance.get("name"),
                "model": instance.get("served_model_name"),
                "model_path": instance.get("model"),
                "port": instance.get("port"),
                "vllm": instance.get("vllm_version") or "unknown",
                "vllm_package": instance.get("vllm_package") or "",
                "env": instance.get("env_dir"),
                "env_complete": bool(instance.get("env_complete")),
                "unit": instance.get("unit") or {},
                "plan": plan_figures(instance.get("plan")),
                "health": healthy,
                "healthy": healthy == "healthy",
                "models": (instance.get("health") or {}).get("models"),
                "status": "healthy" if healthy == "healthy" else "unhealthy",
            })
            rows.append(row)
    return rows


def build_report(hosts: List[Dict[str, Any]], generated: str = "") -> Dict[str, Any]:
    """The whole report: rows plus fleet totals."""
    rows = build_rows(hosts)
    names = [h.get("name") for h in hosts]
    unreachable = sorted({r["host"] for r in rows if not r["reachable"]})
    unhealthy = sorted({r["host"] for r in rows if r["reachable"] and r.get("status") != "healthy"})
    return {
        "generated": generated,
        "summary": {
            "hosts": len(names),
            "unreachable": unreachable,
            "unhealthy": unhealthy,
            "instances": sum(1 for r in rows if r.get("instance")),
            "healthy_instances": sum(1 for r in rows if r.get("healthy")),
        },
        "rows": rows,
    }


def _short(text: str, limit: int = 120) -> str:
    """First line of a message, cut to ``limit`` characters, for a table cell."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= limit else first[: limit - 3] + "..."


def _cell(row: Dict[str, Any], key: str) -> str:
    if key == "reachable":
        return "yes" if row.get("reachable") else "**no**"
    if not row.get("reachable") and key != "host":
        return ("unreachable: " + _short(str(row.get("error", "")))) if key == "health" else "-"
    value = row.get(key)
    if key == "unit":
        value = "%s/%s" % (value.get("active", "?"), value.get("sub", "?")) if value else "-"
        if row.get("unit", {}).get("restarts"):
            value += " (%s restarts)" % row["unit"]["restarts"]
    elif key == "plan":
        value = ("%s / %s / %s" % tuple(value.get(f, "?") for f in PLAN_FIELDS)) if value else "-"
    elif key == "vllm" and row.get("vllm_package"):
        value = "%s %s" % (row["vllm_package"], value)
    elif key == "health" and not row.get("instance"):
        value = row.get("status", "-")
    elif key == "changed":
        value = ", ".join(value) if value else "nothing"
    if value is None or value == "":
        return "-"
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Dict[str, Any]) -> str:
    """The report as a Markdown document with one table row per instance."""
    summary = report.get("summary", {})
    lines = ["# Fleet report", ""]
    if report.get("generated"):
        lines += ["Generated " + str(report["generated"]) + ".", ""]
    lines.append(
        "%d host(s), %d of %d instance(s) healthy; unreachable: %s; unhealthy: %s." % (
            summary.get("hosts", 0), summary.get("healthy_instances", 0), summary.get("instances", 0),
            ", ".join(summary.get("unreachable", [])) or "none", ", ".join(summary.get("unhealthy", [])) or "none"))
    lines.append("")
    lines.append("| " + " | ".join(header for _, header in COLUMNS) + " |")
    lines.append("|" + "|".join(" --- " for _ in COLUMNS) + "|")
    for row in report.get("rows", []):
        lines.append("| " + " | ".join(_cell(row, key) for key, _ in COLUMNS) + " |")
    return "\n".join(lines) + "\n"
