#!/usr/bin/env bash
# The GPU layer on a real GPU host: the lent H100 (Ubuntu 24.04, driver 580 that
# came with the image, root, no network, no systemd). Run from the repo root:
#   tests/gpu/run_on_device.sh
# It installs ansible-core from the wheels in .whl/ (see docs/gpu.md), links the
# collection, then checks with ansible_connection=local that
#   1. the nvidia_driver role finds the working driver and changes nothing
#      (changed=0), gpu_facts reads the GPU, the cuda role passes;
#   2. tensor parallel 2 on a one-GPU host fails with the cuda role's message;
#   3. a compute capability floor above the GPU's fails with its message.
# Outputs (log, raw nvidia-smi answers, the facts) go to $OUT. Exit status 0
# only when every check held.
#   PYTHON      interpreter to install ansible-core for (default python3)
#   GPUFLEET_SKIP_WHEELS=1  use the ansible-playbook already on PATH
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${OUT:-/tmp/gpufleet-gpu-out}"
PYTHON="${PYTHON:-python3}"
SITE=/tmp/gpufleet-site
mkdir -p "$OUT"
exec > >(tee "$OUT/run.log") 2>&1
export LC_ALL=C.UTF-8 LANG=C.UTF-8 PYTHONUNBUFFERED=1 ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1
failures=()
check() { # check NAME CONDITION-EXIT-STATUS
  if [[ $2 == 0 ]]; then echo "CHECK PASSED: $1"; else echo "CHECK FAILED: $1"; failures+=("$1"); fi
}
step() { printf '\n==> %s\n' "$*"; }

step "Host"
uname -a
grep -E '^(PRETTY_NAME|VERSION_ID)=' /etc/os-release
command -v nvidia-smi && nvidia-smi --version | head -4
"$PYTHON" --version

step "Raw nvidia-smi answers (kept as test data)"
nvidia-smi --query-gpu=index,name,uuid,memory.total,memory.free,compute_cap,driver_version,mig.mode.current \
  --format=csv,noheader,nounits | tee "$OUT/h100-query.csv"
nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader \
  | tee "$OUT/h100-name-memory-driver-cc.csv"
nvidia-smi -q -d COMPUTE > "$OUT/h100-q-compute.txt"; echo "rc=$? (nvidia-smi -q -d COMPUTE)"
nvidia-smi > "$OUT/h100-table.txt"; echo "rc=$? (nvidia-smi)"
cat "$OUT/h100-q-compute.txt" "$OUT/h100-table.txt"
ls /sys/bus/pci/devices >/dev/null 2>&1 && for d in /sys/bus/pci/devices/*; do
  [[ $(cat "$d/vendor" 2>/dev/null) == 0x10de ]] && echo "PCI $(basename "$d") class $(cat "$d/class")"
done

step "ansible-core from wheels"
if [[ ${GPUFLEET_SKIP_WHEELS:-0} != 1 ]]; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$REPO"/.whl/*.whl \
    || { echo "CHECK FAILED: wheels did not install"; exit 1; }
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" PATH="$SITE/bin:$PATH"
fi
ansible-playbook --version | head -3

# .collections is git-ignored, so it is made here, as scripts/setup.sh does on a controller.
mkdir -p "$REPO/.collections/ansible_collections/gpufleet"
ln -sfn ../../.. "$REPO/.collections/ansible_collections/gpufleet/vllm"
export ANSIBLE_COLLECTIONS_PATH="$REPO/.collections" ANSIBLE_CONFIG="$REPO/ansible.cfg"
cd "$REPO" || exit 1
play() { ansible-playbook -i tests/gpu/inventory.yml tests/gpu/site.yml "$@"; }

step "1. Driver role, gpu_facts, cuda role on the working driver"
play 2>&1 | tee /tmp/gpufleet-play1.log
rc=${PIPESTATUS[0]}
check "playbook passes (rc=$rc)" "$rc"
recap=$(grep -E '^gpu-host +:' /tmp/gpufleet-play1.log | tail -1)
echo "recap: $recap"
[[ $recap =~ changed=0 && $recap =~ failed=0 ]]; check "nothing changed: $recap" $?
grep -q 'already serves branch 580' /tmp/gpufleet-play1.log; check "driver role kept the working driver" $?

step "gpu_facts as JSON"
# The minimal callback prints "host | SUCCESS => {json}"; keep the JSON.
ANSIBLE_LOAD_CALLBACK_PLUGINS=1 ANSIBLE_STDOUT_CALLBACK=ansible.builtin.minimal ANSIBLE_CALLBACK_RESULT_FORMAT=json \
  ansible gpu-host -i tests/gpu/inventory.yml -m gpufleet.vllm.gpu_facts | sed '1s/^[^{]*=> //' > "$OUT/gpu_facts.json"
cat "$OUT/gpu_facts.json"
"$PYTHON" -c 'import json,sys; f=json.load(open(sys.argv[1]))["ansible_facts"]["gpufleet_gpu"]; sys.exit(0 if f["available"] else 1)' \
  "$OUT/gpu_facts.json"; check "gpu_facts JSON says available" $?

step "gpu_facts' usable memory is the total CUDA reports (what --gpu-memory-utilization is a share of)"
if "$PYTHON" -c 'import torch' 2>/dev/null; then
  "$PYTHON" - "$OUT/gpu_facts.json" <<'PY'; check "memory_usable_mib equals torch.cuda.mem_get_info()'s total" $?
import json, sys, torch
gpus = json.load(open(sys.argv[1]))["ansible_facts"]["gpufleet_gpu"]["gpus"]
ok = True
for gpu in gpus:
    cuda_total_mib = torch.cuda.mem_get_info(gpu["index"])[1] // 2**20
    print(f"GPU {gpu['index']}: nvidia-smi total {gpu['memory_total_mib']} MiB, reserved {gpu['memory_reserved_mib']} MiB,"
          f" usable {gpu['memory_usable_mib']} MiB; CUDA total {cuda_total_mib} MiB")
    ok &= gpu["memory_usable_mib"] == cuda_total_mib
sys.exit(0 if ok else 1)
PY
else
  echo "torch is not installed here: skipping the CUDA comparison"
fi

step "2. Tensor parallel 2 on this host must fail in the cuda role"
play -e vllm_tensor_parallel_size=2 2>&1 | tee /tmp/gpufleet-play2.log
rc=${PIPESTATUS[0]}
[[ $rc != 0 ]]; check "tensor parallel 2 fails (rc=$rc)" $?
grep -q 'but cuda_required_gpus=2 (vllm_tensor_parallel_size=2)' /tmp/gpufleet-play2.log; check "with the GPU-count message" $?

step "3. A compute capability floor above the GPU's must fail"
play -e cuda_min_compute_capability=12.0 2>&1 | tee /tmp/gpufleet-play3.log
rc=${PIPESTATUS[0]}
[[ $rc != 0 ]]; check "compute capability 12.0 floor fails (rc=$rc)" $?
grep -q 'need compute capability 12.0 or higher' /tmp/gpufleet-play3.log; check "with the compute-capability message" $?

step "Summary"
if ((${#failures[@]})); then
  printf 'FAILED: %s\n' "${failures[@]}"
  exit 1
fi
echo "ALL GPU CHECKS PASSED"
