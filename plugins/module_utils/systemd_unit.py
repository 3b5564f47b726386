"""Read a systemd service's state from ``systemctl show``, for health gates and reports.

Shared by the vllm_status module (which ships to hosts), so no controller-only imports.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

# What parse_unit_show() needs; pass as --property=<comma-joined>.
PROPERTIES: List[str] = [
    "ActiveState",
    "SubState",
    "UnitFileState",
    "NRestarts",
    "Result",
    "ExecMainStatus",
    "ExecMainStartTimestampMonotonic",
    "ExecMainExitTimestampMonotonic",
]


def _int(value: str) -> Optional[int]:
    return int(value) if value.isdigit() else None


def parse_unit_show(out: str) -> Dict[str, Any]:
    """The unit's state from ``systemctl show --property=...`` output ("" when systemctl failed).

    ``crashed`` is the fail-fast signal: the unit failed, or its main process exited
    and systemd waits RestartSec (10 s for vllm@) to bring it back
    (SubState=auto-restart), which a poll every 5 s sees. A unit that is active and
    still loading is not crashed, even after earlier restarts.
    """
    props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    active = props.get("ActiveState", "") or "unknown"
    sub = props.get("SubState", "") or "unknown"
    restarts = _int(props.get("NRestarts", "")) or 0
    started = _int(props.get("ExecMainStartTimestampMonotonic", "")) or 0
    exited = _int(props.get("ExecMainExitTimestampMonotonic", "")) or 0
    return {
        "active": active,
        "sub": sub,
        "enabled": props.get("UnitFileState", "") or "unknown",
        "restarts": restarts,
        # systemd's verdict on the last run: success, exit-code, signal, core-dump, start-limit-hit...
        "result": props.get("Result", "") or "unknown",
        # The main process's exit code, or the signal number that killed it; None while it never exited.
        "exit_status": _int(props.get("ExecMainStatus", "")) if exited else None,
        # Seconds the last finished run lasted; None while the current run has not exited.
        "ran_s": round((exited - started) / 1e6, 1) if started and exited >= started else None,
        # NRestarts alone is no signal: it keeps counting a crash long past (a kill -9
        # that systemd already healed) until the next deliberate start.
        "crashed": active == "failed" or sub == "auto-restart",
    }
