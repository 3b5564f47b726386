"""The memory planner against the real vLLM CPU server, and a bad plan that must not touch a serving host."""

from __future__ import annotations

import json
import os
import re
import subprocess

UNIT = "vllm@main.service"


def test_planner_predicts_the_kv_cache_vllm_reports(host):
    plan = json.loads(host.file("/etc/vllm/main.plan.json").content_string)
    journal = host.check_output(f"journalctl --no-pager -u {UNIT} -o cat")
    logged = re.findall(r"CPU KV cache size: ([\d,]+) tokens", journal)
    assert logged, "vLLM did not log its CPU KV cache size"
    assert plan["kv_capacity_tokens"] == int(logged[-1].replace(",", ""))


def test_bad_memory_flags_fail_before_the_unit_changes(host):
    unit_before = host.file(f"/etc/systemd/system/{UNIT}").content_string
    env_before = host.file("/etc/vllm/main.env").content_string
    pid_before = host.check_output(f"systemctl show -p MainPID --value {UNIT}")
    project = os.environ["MOLECULE_PROJECT_DIRECTORY"]
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(project, ".collections"), ANSIBLE_FORCE_COLOR="0")
    # The tiny model's own limit is 2048 tokens; vLLM would refuse to start.
    result = subprocess.run(
        [
            "ansible-playbook",
            "-i",
            os.environ["MOLECULE_INVENTORY_FILE"],
            os.path.join(project, "playbooks", "site.yml"),
            "-e",
            "vllm_max_model_len=4096",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "vllm_max_model_len=4096 exceeds the model's own limit of 2048 tokens" in output, output[-4000:]
    assert "Fix: set vllm_max_model_len to 2048 or less" in output
    assert host.file(f"/etc/systemd/system/{UNIT}").content_string == unit_before
    assert host.file("/etc/vllm/main.env").content_string == env_before
    assert host.check_output(f"systemctl show -p MainPID --value {UNIT}") == pid_before
    assert host.service(UNIT).is_running
    assert host.socket("tcp://127.0.0.1:8000").is_listening
