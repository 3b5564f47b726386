"""What a user sees on a host provisioned by playbooks/site.yml with vLLM's CPU build."""

from __future__ import annotations

import json
import re
import shlex

import pytest

UNIT = "vllm@main.service"

# Runs on the host (python3 is there for Ansible) so the test talks to 127.0.0.1 only.
HTTP_CLIENT = r"""
import json, sys, urllib.request
import urllib.error
url, body, key = sys.argv[1], sys.argv[2], sys.argv[3]
headers = {"Content-Type": "application/json"}
if key:
    headers["Authorization"] = "Bearer " + key
req = urllib.request.Request(url, data=body.encode() if body else None, headers=headers)
try:
    with urllib.request.urlopen(req, timeout=120) as resp:
        sys.stdout.write(json.dumps({"status": resp.status, "body": resp.read().decode()}))
except urllib.error.HTTPError as err:
    sys.stdout.write(json.dumps({"status": err.code, "body": err.read().decode()}))
"""


def http(host, path: str, body: dict | None = None, authorized: bool = True) -> tuple[int, str]:
    hostvars = host.ansible.get_variables()
    key = hostvars.get("vllm_api_key", "") if authorized else ""
    cmd = "python3 -c {} {} {} {}".format(
        shlex.quote(HTTP_CLIENT),
        shlex.quote(f"http://127.0.0.1:{hostvars['vllm_port']}{path}"),
        shlex.quote(json.dumps(body) if body else ""),
        shlex.quote(key),
    )
    out = host.check_output(cmd)
    reply = json.loads(out)
    return reply["status"], reply["body"]


@pytest.fixture(scope="module")
def hostvars(host):
    return host.ansible.get_variables()


def test_unit_is_active_and_enabled(host):
    service = host.service(UNIT)
    assert service.is_running
    assert service.is_enabled


def test_server_runs_as_dedicated_non_root_user(host, hostvars):
    pid = host.check_output(f"systemctl show -p MainPID --value {UNIT}").strip()
    assert pid not in ("", "0")
    owner = host.check_output(f"stat -c %U /proc/{pid}").strip()
    assert owner == hostvars.get("vllm_user", "vllm")
    assert owner != "root"
    user = host.user(owner)
    assert user.shell in ("/usr/sbin/nologin", "/bin/false")


def test_port_listens(host, hostvars):
    assert host.socket(f"tcp://127.0.0.1:{hostvars['vllm_port']}").is_listening


# Lists the package's .py files that have no compiled bytecode next to them.
UNCOMPILED = r"""
import importlib.util, pathlib, sys
root = pathlib.Path(sys.argv[1])
print(sum(1 for p in root.rglob("*.py")), sum(1 for p in root.rglob("*.py")
      if not pathlib.Path(importlib.util.cache_from_source(str(p))).exists()))
"""


def test_env_is_built_by_uv_with_bytecode_and_leaves_no_build_files(host, hostvars):
    env = f"/opt/vllm/envs/{hostvars['vllm_package']}-{hostvars['vllm_version']}"
    site = host.check_output(f"{env}/bin/python -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])'")
    dist = f"{site}/{hostvars['vllm_package'].replace('-', '_')}-{hostvars['vllm_version']}.dist-info"
    assert host.file(f"{dist}/INSTALLER").content_string.strip() == "uv"
    # The service user cannot write __pycache__ into the root-owned env: the
    # install compiled every module, also those no import has touched yet.
    total, uncompiled = map(int, host.check_output(
        f"{env}/bin/python -c {shlex.quote(UNCOMPILED)} {site}/vllm").split())
    assert total > 100 and uncompiled == 0, f"{uncompiled} of {total} vllm modules have no bytecode"
    assert not host.file("/opt/vllm/uv-cache").exists
    assert host.file(f"{env}/bin/python").exists


def test_unit_carries_memory_flags_from_variables(host, hostvars):
    unit = host.file(f"/etc/systemd/system/{UNIT}").content_string
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    argv = shlex.split(exec_start.split("=", 1)[1])
    flags = dict(zip(argv, argv[1:]))
    assert argv[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert flags["--max-model-len"] == str(hostvars["vllm_max_model_len"])
    assert float(flags["--gpu-memory-utilization"]) == float(hostvars["vllm_gpu_memory_utilization"])
    assert flags["--max-num-seqs"] == str(hostvars["vllm_max_num_seqs"])
    assert flags["--tensor-parallel-size"] == "1"
    assert flags["--served-model-name"] == hostvars["vllm_served_model_name"]
    assert flags["--port"] == str(hostvars["vllm_port"])


def test_environment_file_is_private_and_sizes_cpu_kv_cache(host, hostvars):
    env = host.file("/etc/vllm/main.env")
    assert env.user == "root"
    assert env.group == "vllm"
    assert env.mode == 0o640
    assert f'VLLM_CPU_KVCACHE_SPACE="{hostvars["vllm_cpu_kvcache_space_gib"]}"' in env.content_string


def test_models_endpoint_names_the_model(host, hostvars):
    status, body = http(host, "/v1/models")
    assert status == 200
    ids = [m["id"] for m in json.loads(body)["data"]]
    assert hostvars["vllm_served_model_name"] in ids


def test_chat_completion_returns_tokens(host, hostvars):
    status, body = http(
        host,
        "/v1/chat/completions",
        {
            "model": hostvars["vllm_served_model_name"],
            "messages": [{"role": "user", "content": "Hello from testinfra"}],
            "max_tokens": 8,
        },
    )
    assert status == 200
    reply = json.loads(body)
    assert reply["usage"]["completion_tokens"] > 0
    assert reply["choices"][0]["message"]["role"] == "assistant"


def test_streaming_chat_completion_returns_tokens(host, hostvars):
    status, body = http(
        host,
        "/v1/chat/completions",
        {
            "model": hostvars["vllm_served_model_name"],
            "messages": [{"role": "user", "content": "Stream to testinfra"}],
            "max_tokens": 8,
            "stream": True,
        },
    )
    assert status == 200
    events = [line[len("data: "):] for line in body.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert len(chunks) >= 2
    assert text != ""


def test_requests_without_the_api_key_are_refused(host, hostvars):
    assert hostvars["vllm_api_key"]
    status, _ = http(host, "/v1/models", authorized=False)
    assert status == 401
    status, _ = http(host, "/v1/models")
    assert status == 200


def test_api_key_is_in_no_file_other_users_can_read(host, hostvars):
    key = hostvars["vllm_api_key"]
    # Files holding the key, among those any user may read.
    leaks = host.run(
        "grep -rlsF -- {} /etc /var/lib/vllm /opt/vllm /tmp | xargs -r stat -c '%a %U:%G %n' "
        "| awk '$1 ~ /[4567]$/'".format(shlex.quote(key))
    )
    assert leaks.stdout.strip() == ""
    env_file = host.file("/etc/vllm/main.env")
    assert key in env_file.content_string
    assert env_file.mode == 0o640


def test_unit_sandbox_exposure_is_low(host):
    out = host.check_output("systemd-analyze security --no-pager %s", UNIT)
    score = float(re.search(r"Overall exposure level for \S+: ([\d.]+)", out).group(1))
    print(f"systemd-analyze security {UNIT}: exposure {score}")
    assert score <= 2.5
