"""site.yml ends with the fleet report that the platform team hands back to ops."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def report_dir() -> Path:
    # molecule.yml points gpufleet_report_dir here; the report is written on the controller.
    return Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "reports"


def test_report_lists_the_host_healthy_with_its_model_and_plan(report_dir, host):
    report = json.loads((report_dir / "fleet-report.json").read_text())
    hostvars = host.ansible.get_variables()
    rows = [r for r in report["rows"] if r["host"] == hostvars["inventory_hostname"]]
    assert len(rows) == 1, report
    row = rows[0]
    assert row["reachable"] is True
    assert row["instance"] == "main"
    assert row["model"] == "tiny-chat"
    assert row["port"] == hostvars["vllm_port"]
    assert row["vllm"] == hostvars["vllm_version"]
    assert row["unit"]["active"] == "active"
    assert row["plan"]["verdict"] == "ok"
    assert report["summary"]["unhealthy"] == []
    assert "tiny-chat" in (report_dir / "fleet-report.md").read_text()


def test_report_never_holds_the_api_key(report_dir, host):
    key = host.ansible.get_variables()["vllm_api_key"]
    for name in ("fleet-report.json", "fleet-report.md"):
        assert key not in (report_dir / name).read_text()
