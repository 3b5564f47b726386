"""Tests of the unit-state reading behind vllm_status and the role's fail-fast wait."""

from __future__ import annotations

from ansible_collections.gpufleet.vllm.plugins.module_utils.systemd_unit import PROPERTIES, parse_unit_show


def show(**props: str) -> str:
    """systemctl show output: one Key=value line per property, in systemd's order."""
    defaults = {
        "ActiveState": "active", "SubState": "running", "UnitFileState": "enabled", "NRestarts": "0",
        "Result": "success", "ExecMainStatus": "0",
        "ExecMainStartTimestampMonotonic": "1000000000", "ExecMainExitTimestampMonotonic": "0",
    }
    defaults.update(props)
    return "".join(f"{key}={defaults[key]}\n" for key in PROPERTIES)


def test_a_loading_server_is_not_crashed() -> None:
    unit = parse_unit_show(show())
    assert unit == {
        "active": "active", "sub": "running", "enabled": "enabled", "restarts": 0,
        "result": "success", "exit_status": None, "ran_s": None, "crashed": False,
    }


def test_waiting_for_the_first_restart_is_crashed_before_nrestarts_counts_it() -> None:
    unit = parse_unit_show(show(
        ActiveState="activating", SubState="auto-restart", Result="exit-code", ExecMainStatus="2",
        ExecMainStartTimestampMonotonic="1000000000", ExecMainExitTimestampMonotonic="1012345678",
    ))
    assert (unit["crashed"], unit["restarts"], unit["exit_status"], unit["ran_s"]) == (True, 0, 2, 12.3)


def test_running_again_after_a_healed_crash_is_not_crashed() -> None:
    # A kill -9 long ago that systemd healed: NRestarts still says 1 until the next
    # deliberate start, but the server is running (and may answer): keep waiting on it.
    unit = parse_unit_show(show(NRestarts="1", Result="exit-code"))
    assert (unit["crashed"], unit["restarts"], unit["exit_status"], unit["ran_s"]) == (False, 1, None, None)


def test_start_limit_hit_is_crashed() -> None:
    unit = parse_unit_show(show(
        ActiveState="failed", SubState="failed", NRestarts="3", Result="start-limit-hit", ExecMainStatus="2",
        ExecMainExitTimestampMonotonic="1009000000",
    ))
    assert (unit["crashed"], unit["result"], unit["ran_s"]) == (True, "start-limit-hit", 9.0)


def test_killed_by_a_signal_reports_the_signal() -> None:
    unit = parse_unit_show(show(
        ActiveState="activating", SubState="auto-restart", Result="signal", ExecMainStatus="9",
        ExecMainExitTimestampMonotonic="1600000000",
    ))
    assert (unit["result"], unit["exit_status"], unit["ran_s"]) == ("signal", 9, 600.0)


def test_no_output_is_unknown_not_crashed() -> None:
    # systemctl failed (no systemd): say so rather than guess a state.
    unit = parse_unit_show("")
    assert (unit["active"], unit["sub"], unit["restarts"], unit["crashed"]) == ("unknown", "unknown", 0, False)


def test_a_unit_that_never_ran_has_no_run_time() -> None:
    unit = parse_unit_show(show(ActiveState="inactive", SubState="dead", ExecMainStartTimestampMonotonic="0",
                                ExecMainExitTimestampMonotonic="0"))
    assert (unit["crashed"], unit["ran_s"], unit["exit_status"]) == (False, None, None)
