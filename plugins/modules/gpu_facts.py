#!/usr/bin/python
"""Ansible module: read the host's NVIDIA GPUs into ansible_facts.gpufleet_gpu."""

from __future__ import annotations

DOCUMENTATION = r"""
module: gpu_facts
short_description: Read the host's NVIDIA GPUs, driver and CUDA version from nvidia-smi
version_added: 0.1.0
description:
  - Runs C(nvidia-smi --query-gpu=index,name,uuid,memory.total,memory.free,compute_cap,driver_version,mig.mode.current
    --format=csv,noheader,nounits) and C(nvidia-smi -q -d COMPUTE) (falling back to the C(nvidia-smi) table header)
    for the highest CUDA version the driver supports, and sets C(ansible_facts.gpufleet_gpu).
  - Counts NVIDIA GPUs and NVSwitches on the PCI bus from sysfs, so a host whose driver is missing or broken
    can be told apart from a host without GPUs, and NVSwitch systems (which need the fabric manager) are found.
  - A host without a usable GPU is not an error - no driver, a driver/library version mismatch after an
    update, no devices, an unreadable answer - it gets C(available=false) and a C(reason) that names the fix.
  - Changes nothing on the host.
author:
  - gpufleet maintainers (@gpufleet)
attributes:
  check_mode:
    description: Runs in check mode too; it only reads.
    support: full
  diff_mode:
    description: Produces no diff.
    support: none
  facts:
    description: Sets C(ansible_facts.gpufleet_gpu).
    support: full
options:
  nvidia_smi_path:
    description:
      - Path of C(nvidia-smi). Empty means the first one in C(PATH), then in C(/usr/local/nvidia/bin).
    type: path
  timeout:
    description:
      - Seconds each C(nvidia-smi) call may take; a hung GPU can make it block for minutes.
    type: int
    default: 60
  pci_devices_path:
    description:
      - The sysfs folder of PCI devices to count GPUs and NVSwitches in (tests point it elsewhere).
    type: path
    default: /sys/bus/pci/devices
"""

EXAMPLES = r"""
- name: Read the GPUs
  gpufleet.vllm.gpu_facts:

- name: Fail unless four GPUs are visible
  ansible.builtin.assert:
    that: ansible_facts.gpufleet_gpu.count >= 4
    fail_msg: "{{ ansible_facts.gpufleet_gpu.reason or 'only ' ~ ansible_facts.gpufleet_gpu.count ~ ' GPUs' }}"

- name: Use an nvidia-smi outside PATH
  gpufleet.vllm.gpu_facts:
    nvidia_smi_path: /usr/local/nvidia/bin/nvidia-smi
"""

RETURN = r"""
gpu_count:
  description: Number of GPUs nvidia-smi lists (0 when none is visible).
  returned: always
  type: int
  sample: 1
ansible_facts:
  description: Facts set on the host.
  returned: always
  type: dict
  contains:
    gpufleet_gpu:
      description: What the host's GPUs offer.
      type: dict
      contains:
        available:
          description: Whether nvidia-smi listed at least one GPU.
          type: bool
          sample: true
        reason:
          description: Empty when available; else why not and the fix, starting with C(no NVIDIA GPU visible).
          type: str
          sample: "no NVIDIA GPU visible: nvidia-smi not found and no NVIDIA GPU sits on the PCI bus."
        driver_version:
          description: The driver's version, for example C(580.159.04); empty when unknown.
          type: str
        cuda_version:
          description: Highest CUDA version the driver supports, for example C(13.0); empty when unknown.
          type: str
        count:
          description: Number of GPUs listed.
          type: int
        gpus:
          description: One entry per GPU.
          type: list
          elements: dict
          contains:
            index: {description: nvidia-smi's index., type: int}
            name: {description: Product name., type: str, sample: NVIDIA H100 80GB HBM3}
            uuid: {description: GPU UUID., type: str}
            memory_total_mib: {description: Memory in MiB (0 when nvidia-smi reports none)., type: int, sample: 81559}
            memory_reserved_mib:
              description: Memory the driver keeps for itself (C(memory.reserved)); 0 when the driver cannot say.
              type: int
              sample: 480
            memory_usable_mib:
              description: What CUDA, and so vLLM's C(--gpu-memory-utilization), sees; total less reserved.
              type: int
              sample: 81079
            memory_free_mib: {description: Free memory in MiB (0 when nvidia-smi reports none)., type: int}
            compute_capability: {description: Compute capability; empty when not reported., type: str, sample: "9.0"}
            mig_mode: {description: Current MIG mode, C(Enabled), C(Disabled) or C(N/A)., type: str}
        pci_gpu_count:
          description: NVIDIA GPUs on the PCI bus per sysfs; null where sysfs cannot be read.
          type: int
        nvswitch_count:
          description: NVIDIA NVSwitches on the PCI bus per sysfs; null where sysfs cannot be read.
          type: int
        nvidia_smi:
          description: The nvidia-smi that was run; empty when none was found.
          type: str
"""

import os
import subprocess
from typing import Callable, Sequence

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.gpufleet.vllm.plugins.module_utils.nvidia_smi import gather, scan_pci


def _runner(timeout: int) -> Callable[[Sequence[str]], tuple[int, str, str]]:
    # subprocess, not run_command, for the timeout: a GPU that fell off the bus can block nvidia-smi for minutes.
    env = dict(os.environ, LC_ALL="C")

    def run(argv: Sequence[str]) -> tuple[int, str, str]:
        try:
            done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, env=env, check=False)
        except subprocess.TimeoutExpired:
            return 124, "", f"nvidia-smi did not answer within {timeout} s (a GPU may be hung; see dmesg for Xid errors)"
        except PermissionError as exc:
            return 126, "", f"cannot run {argv[0]}: {exc}"
        return done.returncode, done.stdout, done.stderr

    return run


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "nvidia_smi_path": {"type": "path"},
            "timeout": {"type": "int", "default": 60},
            "pci_devices_path": {"type": "path", "default": "/sys/bus/pci/devices"},
        },
        supports_check_mode=True,
    )
    path = module.params["nvidia_smi_path"]
    if not path:
        path = module.get_bin_path("nvidia-smi", opt_dirs=["/usr/local/nvidia/bin"])
    facts = gather(path, _runner(module.params["timeout"]), scan_pci(module.params["pci_devices_path"]))
    module.exit_json(changed=False, gpu_count=facts["count"], ansible_facts={"gpufleet_gpu": facts})


if __name__ == "__main__":
    main()
