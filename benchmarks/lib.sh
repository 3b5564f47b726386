# Shared by the shell benchmarks; sourced, not run. Hosts are fresh Debian 12
# systemd containers with the fleet scenario's settings (molecule/fleet).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d)"
export MOLECULE_PROJECT_DIRECTORY="$root"   # the fleet group_vars find the model through it
export ANSIBLE_CONFIG="$root/ansible.cfg" ANSIBLE_COLLECTIONS_PATH="$root/.collections"
bench_containers=()

cleanup() {
  ((${#bench_containers[@]} == 0)) || podman rm -f -t 0 "${bench_containers[@]}" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

start_hosts() {  # start_hosts <inventory> <name>...: fresh containers and an inventory naming them
  local inventory=$1 name
  shift
  for name in "$@"; do
    if podman container exists "$name"; then
      echo "container $name already exists; remove it first" >&2
      exit 1
    fi
  done
  mkdir -p "$(dirname "$inventory")"
  ln -sfn "$root/molecule/fleet/inventory/group_vars" "$(dirname "$inventory")/group_vars"
  printf '[gpu_hosts]\n' >"$inventory"
  for name in "$@"; do
    podman run -d --name "$name" --privileged --systemd=always \
      -v "$root/.cache/wheelhouse:/srv/wheelhouse:ro" localhost/gpufleet-debian12 /lib/systemd/systemd >/dev/null
    bench_containers+=("$name")
    printf '%s ansible_connection=containers.podman.podman\n' "$name" >>"$inventory"
  done
}

converge() {  # converge <label> <inventory>: site.yml; prints "<wall seconds> <changed count>"
  local start end
  start=$(date +%s.%N)
  "$root/.venv/bin/ansible-playbook" -i "$2" "$root/playbooks/site.yml" -e gpufleet_report_dir="$work/reports" \
    >"$work/$1.log" 2>&1 || { tail -40 "$work/$1.log" >&2; echo "$1 converge failed" >&2; exit 1; }
  end=$(date +%s.%N)
  echo "$(echo "$end - $start" | bc) $(grep -Eo 'changed=[0-9]+' "$work/$1.log" | cut -d= -f2 | paste -sd+ | bc)"
}
