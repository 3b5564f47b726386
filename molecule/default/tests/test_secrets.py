"""Re-runs on a provisioned host: nothing changes, nothing leaks, check mode agrees."""

from __future__ import annotations

import os
import re
import subprocess


def run_site(*flags: str) -> tuple[int, str]:
    project = os.environ["MOLECULE_PROJECT_DIRECTORY"]
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(project, ".collections"), ANSIBLE_FORCE_COLOR="0")
    result = subprocess.run(
        ["ansible-playbook", *flags, "-i", os.environ["MOLECULE_INVENTORY_FILE"], os.path.join(project, "playbooks", "site.yml")],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def test_check_and_diff_mode_on_a_provisioned_host_reports_no_change(host):
    returncode, output = run_site("--check", "--diff")
    assert returncode == 0, output[-4000:]
    recap = output[output.rindex("PLAY RECAP"):]
    assert re.search(r"\bchanged=0\b", recap), recap
    assert re.search(r"\bfailed=0\b", recap), recap


def test_api_key_never_appears_in_verbose_output(host):
    key = host.ansible.get_variables()["vllm_api_key"]
    returncode, output = run_site("-vvv")
    assert returncode == 0, output[-4000:]
    recap = output[output.rindex("PLAY RECAP"):] if "PLAY RECAP" in output else output[-2000:]
    assert re.search(r"\bchanged=0\b", recap), recap
    assert key not in output
