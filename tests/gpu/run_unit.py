"""Start a rendered vllm@<name> unit's ExecStart the way systemd would, on a host without systemd.

    python3 run_unit.py /etc/systemd/system/vllm@main.service /tmp/vllm-main.log  -> prints the PID

Reads User, Group, WorkingDirectory, EnvironmentFile and ExecStart from the
unit, starts the command in a session of its own as that user, with only the
environment file's variables (as systemd does) plus PATH and the variables the
GPU machine needs to reach its driver and keep NVLink multicast off.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shlex
import subprocess
import sys

# What systemd gives every service, and what this GPU machine's image needs
# (its driver libraries live outside ld.so's default paths).
PASS_THROUGH = ("LD_LIBRARY_PATH", "CUDA_HOME", "NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES")
FORCED = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def read_unit(path: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key, value)
    return out


def read_env_file(path: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, value = line.split("=", 1)
        # The role writes each value as a JSON string, which systemd reads as a double-quoted word.
        env[key] = json.loads(value) if value.startswith('"') else value
    return env


def main(unit_path: str, log_path: str) -> None:
    unit = read_unit(unit_path)
    env = read_env_file(unit["EnvironmentFile"].lstrip("-"))
    env.setdefault("PATH", DEFAULT_PATH)
    env.update({k: os.environ[k] for k in PASS_THROUGH if k in os.environ})
    env.update(FORCED)
    argv = shlex.split(unit["ExecStart"])
    user = pwd.getpwnam(unit["User"])
    gid = grp.getgrnam(unit.get("Group", unit["User"])).gr_gid

    def drop() -> None:
        os.setgroups([gid])
        os.setgid(gid)
        os.setuid(user.pw_uid)

    log = open(log_path, "ab")
    proc = subprocess.Popen(argv, cwd=unit.get("WorkingDirectory", "/"), env=env, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=drop,
                            start_new_session=True)
    print(proc.pid)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
