"""The nvidia-smi parser behind gpu_facts, fed with recorded outputs (tests/unit/data/nvidia_smi)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import pytest

from ansible_collections.gpufleet.vllm.plugins.module_utils import nvidia_smi
from ansible_collections.gpufleet.vllm.plugins.module_utils.nvidia_smi import (
    NO_GPU,
    RESERVED_FIELDS,
    cuda_argv,
    failure_reason,
    gather,
    parse_cuda_version,
    parse_query,
    query_argv,
    scan_pci,
)

DATA = Path(__file__).parent / "data" / "nvidia_smi"
SMI = "/usr/bin/nvidia-smi"
NO_PCI = {"gpus": None, "nvswitches": None}


def data(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


class FakeSmi:
    """Answers each argv from a table and records what was run."""

    def __init__(self, answers: dict[tuple[str, ...], tuple[int, str, str]], missing: bool = False) -> None:
        self.answers = answers
        self.missing = missing
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, argv: Sequence[str]) -> tuple[int, str, str]:
        self.calls.append(tuple(argv))
        if self.missing:
            raise FileNotFoundError(argv[0])
        try:
            return self.answers[tuple(argv)]
        except KeyError:
            return 2, "", f"unexpected call {argv}"


def working(query: str, cuda_report: Optional[str] = None, table: Optional[str] = None,
            reserved: Optional[str] = None) -> FakeSmi:
    answers = {tuple(query_argv(SMI)): (0, query, "")}
    if reserved is not None:
        answers[tuple(query_argv(SMI, RESERVED_FIELDS))] = (0, reserved, "")
    answers[tuple(cuda_argv(SMI))] = (0, cuda_report, "") if cuda_report is not None else (6, "", "Invalid combination")
    if table is not None:
        answers[(SMI,)] = (0, table, "")
    return FakeSmi(answers)


def failing(rc: int, output: str) -> FakeSmi:
    # nvidia-smi prints its failures on stdout.
    return FakeSmi({tuple(query_argv(SMI)): (rc, output, "")})


# --- parse_query --------------------------------------------------------------


def test_the_real_h100_line_with_units_parses():
    fields = ("name", "memory.total", "driver_version", "compute_cap")
    [gpu] = parse_query(data("h100-name-memory-driver-cc.csv"), fields)
    assert gpu == {
        "name": "NVIDIA H100 80GB HBM3",
        "memory_total_mib": 81559,
        "driver_version": "580.159.04",
        "compute_capability": "9.0",
    }


def test_full_query_of_one_h100():
    [gpu] = parse_query(data("h100-query.csv"))
    assert gpu["index"] == 0
    assert gpu["name"] == "NVIDIA H100 80GB HBM3"
    assert gpu["uuid"] == "GPU-335cfc53-e19f-2e98-2dd0-c1263e58aa9d"
    assert gpu["memory_total_mib"] == 81559
    assert gpu["memory_free_mib"] == 81079
    assert gpu["compute_capability"] == "9.0"
    assert gpu["mig_mode"] == "Disabled"


def test_eight_gpus_keep_their_order_and_own_values():
    gpus = parse_query(data("eight-h200-query.csv"))
    assert [gpu["index"] for gpu in gpus] == list(range(8))
    assert len({gpu["uuid"] for gpu in gpus}) == 8
    assert gpus[7]["memory_free_mib"] == 140000
    assert all(gpu["memory_total_mib"] == 143771 for gpu in gpus)


def test_na_values_become_empty_or_zero():
    rtx, t4 = parse_query(data("na-values-query.csv"))
    assert rtx["memory_total_mib"] == 24564
    assert rtx["memory_free_mib"] == 0
    assert rtx["mig_mode"] == "N/A"
    assert t4["memory_total_mib"] == 0
    assert t4["compute_capability"] == ""
    assert t4["mig_mode"] == "N/A"


def test_a_line_with_missing_columns_is_an_error():
    with pytest.raises(ValueError, match="expected 8 columns"):
        parse_query("0, NVIDIA H100 80GB HBM3, GPU-x, 81559\n")


def test_a_non_numeric_memory_value_is_an_error():
    with pytest.raises(ValueError, match="MiB"):
        parse_query("0, NVIDIA H100, GPU-x, lots, 1, 9.0, 580.1, Disabled\n")


# --- CUDA version ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["h100-table.txt", "h100-q-compute.txt"])
def test_cuda_version_from_table_header_and_q_report(name):
    assert parse_cuda_version(data(name)) == "13.0"


def test_no_cuda_version_gives_empty_string():
    assert parse_cuda_version(data("no-kernel-module.txt")) == ""


# --- gather: the fact ------------------------------------------------------------


def test_gather_one_h100():
    smi = working(data("h100-query.csv"), data("h100-q-compute.txt"))
    facts = gather(SMI, smi, {"gpus": 1, "nvswitches": 0})
    assert facts["available"] is True
    assert facts["reason"] == ""
    assert facts["driver_version"] == "580.159.04"
    assert facts["cuda_version"] == "13.0"
    assert facts["count"] == 1
    assert facts["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3"
    assert "driver_version" not in facts["gpus"][0]
    assert facts["pci_gpu_count"] == 1
    assert facts["nvswitch_count"] == 0
    # The cheap -q report answered, so the table was not needed.
    assert (SMI,) not in smi.calls


def test_gather_h100_usable_memory_is_what_cuda_sees():
    # Recorded on the lent H100: nvidia-smi total 81559 MiB, reserved 480 MiB;
    # torch.cuda.mem_get_info() reported a total of 81079 MiB.
    smi = working(data("h100-query.csv"), data("h100-q-compute.txt"), reserved=data("h100-reserved.csv"))
    gpu = gather(SMI, smi, NO_PCI)["gpus"][0]
    assert gpu["memory_total_mib"] == 81559
    assert gpu["memory_reserved_mib"] == 480
    assert gpu["memory_usable_mib"] == 81079


def test_gather_without_memory_reserved_uses_the_total():
    # Drivers before R510 reject the field; the main query must not depend on it.
    smi = working(data("h100-query.csv"), data("h100-q-compute.txt"))
    facts = gather(SMI, smi, NO_PCI)
    assert facts["available"] is True
    assert facts["gpus"][0]["memory_reserved_mib"] == 0
    assert facts["gpus"][0]["memory_usable_mib"] == facts["gpus"][0]["memory_total_mib"]


def test_gather_falls_back_to_the_table_header_for_cuda():
    smi = working(data("h100-query.csv"), cuda_report=None, table=data("h100-table.txt"))
    facts = gather(SMI, smi, NO_PCI)
    assert facts["cuda_version"] == "13.0"
    assert (SMI,) in smi.calls


def test_gather_eight_gpus_and_mig():
    facts = gather(SMI, working(data("eight-h200-query.csv"), data("h100-q-compute.txt")), NO_PCI)
    assert facts["count"] == 8
    mig = gather(SMI, working(data("a100-mig-query.csv"), data("h100-q-compute.txt")), NO_PCI)
    assert [gpu["mig_mode"] for gpu in mig["gpus"]] == ["Enabled", "Disabled"]
    assert mig["driver_version"] == "570.172.08"


def test_no_binary_on_a_host_without_gpus():
    facts = gather(None, FakeSmi({}), {"gpus": 0, "nvswitches": 0})
    assert facts["available"] is False
    assert facts["reason"].startswith(NO_GPU + ": nvidia-smi not found")
    assert "no NVIDIA GPU sits on the PCI bus" in facts["reason"]
    assert facts["count"] == 0 and facts["gpus"] == []


def test_no_binary_but_gpus_on_the_bus_names_the_driver_role():
    facts = gather(None, FakeSmi({}), {"gpus": 8, "nvswitches": 4})
    assert "8 NVIDIA GPU(s) sit on the PCI bus" in facts["reason"]
    assert "nvidia_driver" in facts["reason"]
    assert facts["nvswitch_count"] == 4


def test_a_configured_path_that_does_not_exist():
    facts = gather("/opt/nope/nvidia-smi", FakeSmi({}, missing=True), NO_PCI)
    assert facts["available"] is False
    assert "/opt/nope/nvidia-smi" in facts["reason"]


def test_driver_library_mismatch_names_the_reboot():
    facts = gather(SMI, failing(18, data("mismatch.txt")), NO_PCI)
    assert facts["available"] is False
    assert "Driver/library version mismatch" in facts["reason"]
    assert "580.95" in facts["reason"]
    assert "Fix: reboot" in facts["reason"]


def test_kernel_module_not_loaded():
    facts = gather(SMI, failing(9, data("no-kernel-module.txt")), NO_PCI)
    assert facts["available"] is False
    assert facts["reason"].startswith(NO_GPU)
    assert "kernel module is not loaded" in facts["reason"]


def test_no_devices_found():
    facts = gather(SMI, failing(6, data("no-devices.txt")), NO_PCI)
    assert facts["available"] is False
    assert "found no devices" in facts["reason"]


def test_empty_answer_counts_as_no_devices():
    facts = gather(SMI, working(""), NO_PCI)
    assert facts["available"] is False
    assert "found no devices" in facts["reason"]


def test_a_driver_too_old_for_compute_cap():
    facts = gather(SMI, failing(2, data("old-driver.txt")), NO_PCI)
    assert "too old" in facts["reason"]
    assert "nvidia_driver_branch" in facts["reason"]


def test_garbage_output_is_a_reason_not_a_traceback():
    facts = gather(SMI, working("Unable to determine the device handle for GPU0000:00:06.0: Unknown Error\n"), NO_PCI)
    assert facts["available"] is False
    assert "could not read nvidia-smi's answer" in facts["reason"]


def test_unknown_failure_keeps_rc_and_first_line():
    reason = failure_reason(15, "", "Something odd\nmore\n")
    assert reason == NO_GPU + ": nvidia-smi exited with rc 15: Something odd"


# --- PCI scan ---------------------------------------------------------------------


def _device(root: Path, name: str, vendor: str, pci_class: str) -> None:
    path = root / name
    path.mkdir()
    (path / "vendor").write_text(vendor + "\n")
    (path / "class").write_text(pci_class + "\n")


def test_scan_pci_counts_gpus_and_nvswitches(tmp_path):
    _device(tmp_path, "0000:18:00.0", "0x10de", "0x030200")  # H100 SXM: 3D controller
    _device(tmp_path, "0000:2a:00.0", "0x10de", "0x030200")
    _device(tmp_path, "0000:05:00.0", "0x10de", "0x068000")  # NVSwitch: bridge
    _device(tmp_path, "0000:00:02.0", "0x8086", "0x030000")  # someone else's VGA
    _device(tmp_path, "0000:3b:00.1", "0x10de", "0x040300")  # NVIDIA HDMI audio
    (tmp_path / "0000:ff:00.0").mkdir()  # unreadable entry
    assert scan_pci(str(tmp_path)) == {"gpus": 2, "nvswitches": 1}


def test_scan_pci_without_sysfs(tmp_path):
    assert scan_pci(str(tmp_path / "absent")) == {"gpus": None, "nvswitches": None}


def test_query_asks_for_the_contract_fields_without_units():
    argv = query_argv("nvidia-smi")
    assert argv[1] == "--query-gpu=" + ",".join(nvidia_smi.QUERY_FIELDS)
    assert argv[2] == "--format=csv,noheader,nounits"
    assert os.path.basename(cuda_argv(SMI)[0]) == "nvidia-smi"


def test_a_failure_says_what_the_pci_bus_holds():
    on_gpu_host = gather(SMI, failing(9, data("no-kernel-module.txt")), {"gpus": 8, "nvswitches": 4})
    assert on_gpu_host["reason"].endswith(" 8 NVIDIA GPU(s) sit on the PCI bus.")
    in_container = gather(SMI, failing(9, data("no-kernel-module.txt")), {"gpus": 0, "nvswitches": 0})
    assert in_container["reason"].endswith(" No NVIDIA GPU sits on the PCI bus.")
    unknown = gather(SMI, failing(9, data("no-kernel-module.txt")), NO_PCI)
    assert "PCI" not in unknown["reason"]
