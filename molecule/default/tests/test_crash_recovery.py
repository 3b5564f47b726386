"""A server killed with SIGKILL comes back on its own, serving again."""

from __future__ import annotations

import time

UNIT = "vllm@main.service"
RECOVERY_LIMIT_S = 600


def main_pid(host) -> str:
    return host.check_output(f"systemctl show -p MainPID --value {UNIT}").strip()


def test_killed_server_is_restarted_and_serves_again(host):
    port = host.ansible.get_variables()["vllm_port"]
    old_pid = main_pid(host)
    assert old_pid not in ("", "0")
    started = time.monotonic()
    host.check_output(f"kill -9 {old_pid}")
    deadline = started + RECOVERY_LIMIT_S
    healthy = False
    while time.monotonic() < deadline:
        pid = main_pid(host)
        if pid not in ("", "0", old_pid):
            probe = host.run(
                "python3 -c \"import urllib.request,sys; "
                f"sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:{port}/health', timeout=5).status == 200 else 1)\""
            )
            if probe.rc == 0:
                healthy = True
                break
        time.sleep(5)
    elapsed = time.monotonic() - started
    print(f"vllm@main recovered from SIGKILL in {elapsed:.0f} s")
    assert healthy, f"not healthy {elapsed:.0f} s after SIGKILL"
    restarts = int(host.check_output(f"systemctl show -p NRestarts --value {UNIT}"))
    assert restarts >= 1
