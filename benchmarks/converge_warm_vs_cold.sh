#!/usr/bin/env bash
# Cold converge (fresh container: packages, env, model, server start) versus a
# warm re-run of playbooks/site.yml on the same host, measured in one run.
# Prints both durations, their ratio and the warm run's changed count; it asserts
# nothing about time (machines differ), only that the warm run changed nothing.
# Needs what `make demo` builds: .venv, the image, .cache/wheelhouse, .cache/models.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
name="${GPUFLEET_BENCH_CONTAINER:-gpufleet-bench-1}"
work="$(mktemp -d)"
export MOLECULE_PROJECT_DIRECTORY="$root"   # the fleet group_vars find the model through it
export ANSIBLE_CONFIG="$root/ansible.cfg" ANSIBLE_COLLECTIONS_PATH="$root/.collections"

cleanup() {
  podman rm -f "$name" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

if podman container exists "$name"; then
  echo "container $name already exists; remove it or set GPUFLEET_BENCH_CONTAINER" >&2
  exit 1
fi
podman run -d --name "$name" --privileged --systemd=always \
  -v "$root/.cache/wheelhouse:/srv/wheelhouse:ro" localhost/gpufleet-debian12 /lib/systemd/systemd >/dev/null

# Same settings as the fleet scenario, one instance.
mkdir -p "$work/inventory"
ln -s "$root/molecule/fleet/inventory/group_vars" "$work/inventory/group_vars"
printf '[gpu_hosts]\n%s ansible_connection=containers.podman.podman\n' "$name" > "$work/inventory/hosts.ini"

run() {  # run <label>: converge, print seconds and the recap's changed= count
  local start end
  start=$(date +%s.%N)
  "$root/.venv/bin/ansible-playbook" -i "$work/inventory/hosts.ini" "$root/playbooks/site.yml" \
    -e gpufleet_report_dir="$work/reports" > "$work/$1.log" 2>&1 \
    || { tail -40 "$work/$1.log" >&2; echo "$1 converge failed" >&2; exit 1; }
  end=$(date +%s.%N)
  echo "$(echo "$end - $start" | bc) $(grep -Eo "^$name +: .*changed=[0-9]+" "$work/$1.log" | grep -Eo 'changed=[0-9]+' | cut -d= -f2)"
}

read -r cold cold_changed < <(run cold)
read -r warm warm_changed < <(run warm)
printf 'cold converge: %6.1f s (changed=%s)\n' "$cold" "$cold_changed"
printf 'warm re-run:   %6.1f s (changed=%s)\n' "$warm" "$warm_changed"
printf 'warm / cold:   %6.1f %% (goal: <= 15 %%)\n' "$(echo "100 * $warm / $cold" | bc -l)"
if [ "$warm_changed" != 0 ]; then
  echo "the warm re-run changed $warm_changed task(s); it must change nothing" >&2
  exit 1
fi
