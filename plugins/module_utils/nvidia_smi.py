"""Read NVIDIA GPUs from nvidia-smi output: the logic behind the gpu_facts module.

Everything here is pure: commands run through a ``Runner`` the caller passes in,
so the unit tests feed recorded outputs and the module feeds subprocess.
Every way of not seeing a GPU ends in ``available: False`` and a reason that
names the fix, never in an exception.
"""

from __future__ import annotations

import csv
import os
import re
from typing import Any, Callable, Optional, Sequence

# What the module asks nvidia-smi for, in this order (the shared fact contract).
QUERY_FIELDS: tuple[str, ...] = (
    "index",
    "name",
    "uuid",
    "memory.total",
    "memory.free",
    "compute_cap",
    "driver_version",
    "mig.mode.current",
)

# Asked for separately: drivers before R510 reject the field, and one unknown
# field fails the whole query.
RESERVED_FIELDS: tuple[str, ...] = ("index", "memory.reserved")

# Placeholders nvidia-smi prints where a field has no value for a GPU.
_MISSING = {"", "n/a", "[n/a]", "[not supported]", "[unknown error]", "[insufficient permissions]",
            "[gpu is lost]", "[requested functionality has been deprecated]"}

_CUDA_RE = re.compile(r"CUDA Version\s*:\s*([0-9]+(?:\.[0-9]+)*)")
_DRIVER_RE = re.compile(r"Driver Version\s*:\s*([0-9]+(?:\.[0-9]+)*)")
_NVML_LIB_RE = re.compile(r"NVML library version:\s*([0-9.]+)")

NO_GPU = "no NVIDIA GPU visible"

# argv -> (rc, stdout, stderr); raises FileNotFoundError when argv[0] is missing.
Runner = Callable[[Sequence[str]], tuple[int, str, str]]


def query_argv(nvidia_smi: str, fields: Sequence[str] = QUERY_FIELDS) -> list[str]:
    return [nvidia_smi, "--query-gpu=" + ",".join(fields), "--format=csv,noheader,nounits"]


def cuda_argv(nvidia_smi: str) -> list[str]:
    # The COMPUTE section is the smallest -q report; its header carries the CUDA version.
    return [nvidia_smi, "-q", "-d", "COMPUTE"]


def _value(raw: str) -> Optional[str]:
    text = raw.strip()
    return None if text.lower() in _MISSING else text


def _mib(raw: str) -> int:
    """'81559' or '81559 MiB' -> 81559; a missing value -> 0."""
    text = _value(raw)
    if text is None:
        return 0
    number = text.split()[0]
    if not number.isdigit():
        raise ValueError(f"not a MiB count: {raw!r}")
    return int(number)


def parse_query(text: str, fields: Sequence[str] = QUERY_FIELDS) -> list[dict[str, Any]]:
    """Rows of ``--query-gpu=<fields> --format=csv,noheader[,nounits]`` as contract dicts.

    Only the keys for the given fields appear. Raises ValueError on a line
    with the wrong number of columns.
    """
    gpus: list[dict[str, Any]] = []
    lines = [line for line in text.splitlines() if line.strip()]
    for row in csv.reader(lines, skipinitialspace=True):
        if len(row) != len(fields):
            raise ValueError(f"expected {len(fields)} columns ({', '.join(fields)}), got {len(row)}: {', '.join(row)!r}")
        values = dict(zip(fields, row))
        gpu: dict[str, Any] = {}
        if "index" in values:
            index = _value(values["index"])
            if index is None or not index.isdigit():
                raise ValueError(f"not a GPU index: {values['index']!r}")
            gpu["index"] = int(index)
        if "name" in values:
            gpu["name"] = _value(values["name"]) or ""
        if "uuid" in values:
            gpu["uuid"] = _value(values["uuid"]) or ""
        if "memory.total" in values:
            gpu["memory_total_mib"] = _mib(values["memory.total"])
        if "memory.free" in values:
            gpu["memory_free_mib"] = _mib(values["memory.free"])
        if "memory.reserved" in values:
            gpu["memory_reserved_mib"] = _mib(values["memory.reserved"])
        if "compute_cap" in values:
            gpu["compute_capability"] = _value(values["compute_cap"]) or ""
        if "driver_version" in values:
            gpu["driver_version"] = _value(values["driver_version"]) or ""
        if "mig.mode.current" in values:
            gpu["mig_mode"] = _value(values["mig.mode.current"]) or "N/A"
        gpus.append(gpu)
    return gpus


def add_usable_memory(gpus: list[dict[str, Any]], reserved_answer: Optional[str]) -> None:
    """Set memory_reserved_mib and memory_usable_mib on each GPU, in place.

    The driver keeps memory.reserved for itself; CUDA (and so vLLM, whose
    --gpu-memory-utilization is a share of what CUDA reports) sees the rest.
    An H100 80GB reports 81559 MiB total, 480 MiB reserved, and torch sees
    81079 MiB. Without an answer (older drivers), usable equals total.
    """
    reserved: dict[int, int] = {}
    if reserved_answer:
        try:
            reserved = {row["index"]: row.get("memory_reserved_mib", 0)
                        for row in parse_query(reserved_answer, RESERVED_FIELDS)}
        except ValueError:
            reserved = {}
    for gpu in gpus:
        gpu["memory_reserved_mib"] = reserved.get(gpu.get("index", -1), 0)
        gpu["memory_usable_mib"] = max(gpu.get("memory_total_mib", 0) - gpu["memory_reserved_mib"], 0)


def parse_cuda_version(text: str) -> str:
    """The driver's CUDA version from the nvidia-smi table header or a -q report; '' if absent."""
    match = _CUDA_RE.search(text)
    return match.group(1) if match else ""


def parse_driver_version(text: str) -> str:
    match = _DRIVER_RE.search(text)
    return match.group(1) if match else ""


def failure_reason(rc: int, stdout: str, stderr: str) -> str:
    """Why nvidia-smi did not list GPUs, with the fix, prefixed with NO_GPU."""
    text = "\n".join(part for part in (stdout, stderr) if part).strip()
    lowered = text.lower()
    if "driver/library version mismatch" in lowered:
        lib = _NVML_LIB_RE.search(text)
        library = f" (user-space NVML library {lib.group(1)})" if lib else ""
        return (f"{NO_GPU}: Driver/library version mismatch{library}: the loaded NVIDIA kernel module is older or "
                f"newer than the installed user-space driver, usually after a driver update without a reboot. "
                f"Fix: reboot the host so the matching kernel module loads.")
    if "couldn't communicate with the nvidia driver" in lowered or "nvidia-smi has failed" in lowered:
        return (f"{NO_GPU}: nvidia-smi could not communicate with the NVIDIA driver: the nvidia kernel module is not "
                f"loaded (no GPU on this machine, a reboot pending after a driver install, or a module not built for "
                f"the running kernel). Fix: reboot if the driver was just installed; otherwise check "
                f"'dkms status' and 'dmesg | grep -i nvidia'.")
    if "no devices were found" in lowered:
        return f"{NO_GPU}: nvidia-smi found no devices (the driver is loaded but sees no GPU)."
    if "insufficient permissions" in lowered:
        return f"{NO_GPU}: nvidia-smi lacks permission to read the GPUs. Fix: run as root (become: true)."
    if "is not a valid field to query" in lowered:
        return (f"{NO_GPU}: this nvidia-smi cannot report {', '.join(QUERY_FIELDS)}; the driver is too old "
                f"for vLLM. Fix: install a newer driver branch (nvidia_driver_branch).")
    first = text.splitlines()[0] if text else "no output"
    return f"{NO_GPU}: nvidia-smi exited with rc {rc}: {first}"


def scan_pci(devices_dir: str = "/sys/bus/pci/devices") -> dict[str, Optional[int]]:
    """Count NVIDIA GPUs and NVSwitches on the PCI bus; None where sysfs cannot be read."""
    counts: dict[str, Optional[int]] = {"gpus": None, "nvswitches": None}
    try:
        entries = sorted(os.listdir(devices_dir))
    except OSError:
        return counts
    gpus = nvswitches = 0
    for entry in entries:
        try:
            with open(os.path.join(devices_dir, entry, "vendor"), encoding="ascii") as handle:
                vendor = handle.read().strip().lower()
            with open(os.path.join(devices_dir, entry, "class"), encoding="ascii") as handle:
                pci_class = handle.read().strip().lower()
        except OSError:
            continue
        if vendor != "0x10de":
            continue
        # 0x0300: VGA controller, 0x0302: 3D controller (data-centre GPUs); NVSwitches are bridges (0x0680).
        if pci_class.startswith(("0x0300", "0x0302")):
            gpus += 1
        elif pci_class.startswith("0x0680"):
            nvswitches += 1
    counts["gpus"] = gpus
    counts["nvswitches"] = nvswitches
    return counts


def _unavailable(reason: str, pci: dict[str, Optional[int]], nvidia_smi: str = "", driver_version: str = "",
                 cuda_version: str = "") -> dict[str, Any]:
    return {
        "available": False,
        "reason": reason,
        "driver_version": driver_version,
        "cuda_version": cuda_version,
        "count": 0,
        "gpus": [],
        "pci_gpu_count": pci.get("gpus"),
        "nvswitch_count": pci.get("nvswitches"),
        "nvidia_smi": nvidia_smi,
    }


def _on_bus(pci: dict[str, Optional[int]]) -> str:
    gpus = pci.get("gpus")
    if gpus is None:
        return ""
    if gpus == 0:
        return " and no NVIDIA GPU sits on the PCI bus"
    return f", though {gpus} NVIDIA GPU(s) sit on the PCI bus"


def _bus_note(pci: dict[str, Optional[int]]) -> str:
    gpus = pci.get("gpus")
    if gpus is None:
        return ""
    return " No NVIDIA GPU sits on the PCI bus." if gpus == 0 else f" {gpus} NVIDIA GPU(s) sit on the PCI bus."


def gather(nvidia_smi: Optional[str], run: Runner, pci: Optional[dict[str, Optional[int]]] = None) -> dict[str, Any]:
    """The gpufleet_gpu fact: GPUs, driver and CUDA version, or available False and why.

    ``nvidia_smi`` is the binary's path, or None when none was found.
    """
    pci = pci if pci is not None else {"gpus": None, "nvswitches": None}
    if not nvidia_smi:
        fix = " Fix: install the NVIDIA driver (role gpufleet.vllm.nvidia_driver)." if pci.get("gpus") else ""
        return _unavailable(f"{NO_GPU}: nvidia-smi not found{_on_bus(pci)}.{fix}", pci)
    try:
        rc, out, err = run(query_argv(nvidia_smi))
    except FileNotFoundError:
        return _unavailable(f"{NO_GPU}: nvidia-smi not found at {nvidia_smi}{_on_bus(pci)}.", pci, nvidia_smi)
    if rc != 0:
        return _unavailable(failure_reason(rc, out, err) + _bus_note(pci), pci, nvidia_smi)
    try:
        gpus = parse_query(out)
    except ValueError as exc:
        return _unavailable(f"{NO_GPU}: could not read nvidia-smi's answer ({exc}).", pci, nvidia_smi)
    if not gpus:
        return _unavailable(failure_reason(rc, out or "No devices were found", err), pci, nvidia_smi)

    driver_version = next((gpu["driver_version"] for gpu in gpus if gpu.get("driver_version")), "")
    cuda_version = ""
    for argv in (cuda_argv(nvidia_smi), [nvidia_smi]):
        try:
            rc, out, _ = run(argv)
        except FileNotFoundError:
            break
        if rc == 0:
            cuda_version = parse_cuda_version(out)
            driver_version = driver_version or parse_driver_version(out)
        if cuda_version:
            break
    try:
        rc, out, _ = run(query_argv(nvidia_smi, RESERVED_FIELDS))
    except FileNotFoundError:
        rc, out = 1, ""
    add_usable_memory(gpus, out if rc == 0 else None)
    for gpu in gpus:
        gpu.pop("driver_version", None)
    return {
        "available": True,
        "reason": "",
        "driver_version": driver_version,
        "cuda_version": cuda_version,
        "count": len(gpus),
        "gpus": gpus,
        "pci_gpu_count": pci.get("gpus"),
        "nvswitch_count": pci.get("nvswitches"),
        "nvidia_smi": nvidia_smi,
    }
