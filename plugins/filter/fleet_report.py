"""Filters of the fleet report (roles/fleet_report); the logic lives in module_utils/fleet_report.py (unit-tested).
Each filter is documented in <filter name>.yml beside this file (ansible-doc -t filter).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from ansible_collections.gpufleet.vllm.plugins.module_utils.fleet_report import (
    build_report,
    render_markdown,
    summarize_changes,
)


def fleet_report_build(hosts: List[Dict[str, Any]], generated: str = "") -> Dict[str, Any]:
    """Rows and totals of the fleet report."""
    return build_report(list(hosts), generated)


def fleet_report_markdown(report: Dict[str, Any]) -> str:
    """The report as Markdown."""
    return render_markdown(report)


def fleet_report_changes(registered: Optional[Dict[str, Any]]) -> List[str]:
    """What the vllm role changed on a host in this invocation."""
    return summarize_changes(registered)


class FilterModule:
    """The fleet report filters."""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {
            "fleet_report_build": fleet_report_build,
            "fleet_report_markdown": fleet_report_markdown,
            "fleet_report_changes": fleet_report_changes,
        }
