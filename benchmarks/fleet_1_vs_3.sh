#!/usr/bin/env bash
# Cold converge of one host versus three hosts with playbooks/site.yml at the
# default forks, measured in one run. Prints both wall times and their ratio
# (goal: well under 3x); asserts nothing about time. Each host is a fresh
# Debian 12 systemd container with the fleet scenario's settings.
# Needs what `make demo` builds: .venv, the image, .cache/wheelhouse, .cache/models.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
prefix="${GPUFLEET_BENCH_PREFIX:-gpufleet-bench-fleet}"
work="$(mktemp -d)"
export MOLECULE_PROJECT_DIRECTORY="$root"   # the fleet group_vars find the model through it
export ANSIBLE_CONFIG="$root/ansible.cfg" ANSIBLE_COLLECTIONS_PATH="$root/.collections"
names=("$prefix-1" "$prefix-2" "$prefix-3" "$prefix-4")

cleanup() {
  podman rm -f -t 0 "${names[@]}" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

for name in "${names[@]}"; do
  if podman container exists "$name"; then
    echo "container $name already exists; remove it or set GPUFLEET_BENCH_PREFIX" >&2
    exit 1
  fi
done

start_hosts() {  # start_hosts <inventory> <name>...: fresh containers and an inventory naming them
  local inventory=$1
  shift
  mkdir -p "$(dirname "$inventory")"
  ln -sfn "$root/molecule/fleet/inventory/group_vars" "$(dirname "$inventory")/group_vars"
  printf '[gpu_hosts]\n' >"$inventory"
  for name in "$@"; do
    podman run -d --name "$name" --privileged --systemd=always \
      -v "$root/.cache/wheelhouse:/srv/wheelhouse:ro" localhost/gpufleet-debian12 /lib/systemd/systemd >/dev/null
    printf '%s ansible_connection=containers.podman.podman\n' "$name" >>"$inventory"
  done
}

converge() {  # converge <label> <inventory>: prints wall seconds
  local start end
  start=$(date +%s.%N)
  "$root/.venv/bin/ansible-playbook" -i "$2" "$root/playbooks/site.yml" -e gpufleet_report_dir="$work/reports" \
    >"$work/$1.log" 2>&1 || { tail -40 "$work/$1.log" >&2; echo "$1 converge failed" >&2; exit 1; }
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}

start_hosts "$work/one/hosts.ini" "${names[0]}"
one=$(converge one "$work/one/hosts.ini")
podman rm -f -t 0 "${names[0]}" >/dev/null
start_hosts "$work/three/hosts.ini" "${names[1]}" "${names[2]}" "${names[3]}"
three=$(converge three "$work/three/hosts.ini")

printf 'forks: %s (ansible.cfg), cores: %s\n' "$(grep -E '^forks' "$root/ansible.cfg" | cut -d= -f2 | tr -d ' ' || echo default)" "$(nproc)"
printf '1 host:   %7.1f s\n' "$one"
printf '3 hosts:  %7.1f s\n' "$three"
printf '3 / 1:    %7.2fx (goal: well under 3x)\n' "$(echo "$three / $one" | bc -l)"
