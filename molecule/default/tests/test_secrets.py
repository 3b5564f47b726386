"""A full run at -vvv shows neither the API key nor anything changed."""

from __future__ import annotations

import os
import re
import subprocess


def test_api_key_never_appears_in_verbose_output(host):
    key = host.ansible.get_variables()["vllm_api_key"]
    project = os.environ["MOLECULE_PROJECT_DIRECTORY"]
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(project, ".collections"), ANSIBLE_FORCE_COLOR="0")
    result = subprocess.run(
        ["ansible-playbook", "-vvv", "-i", os.environ["MOLECULE_INVENTORY_FILE"], os.path.join(project, "playbooks", "site.yml")],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    recap = output[output.rindex("PLAY RECAP"):] if "PLAY RECAP" in output else output[-2000:]
    assert re.search(r"\bchanged=0\b", recap), recap
    assert key not in output
