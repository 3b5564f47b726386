#!/usr/bin/env bash
# Cold converge of one host versus three hosts with playbooks/site.yml at the
# default forks, measured in one run. Prints both wall times and their ratio
# (goal: well under 3x); asserts nothing about time.
# Needs what `make demo` builds: .venv, the image, .cache/wheelhouse, .cache/models.
source "$(dirname "$0")/lib.sh"
prefix="${GPUFLEET_BENCH_PREFIX:-gpufleet-bench-fleet}"

start_hosts "$work/one/hosts.ini" "$prefix-1"
read -r one _ < <(converge one "$work/one/hosts.ini")
podman rm -f -t 0 "$prefix-1" >/dev/null
start_hosts "$work/three/hosts.ini" "$prefix-2" "$prefix-3" "$prefix-4"
read -r three _ < <(converge three "$work/three/hosts.ini")

printf 'cores: %s, forks: ansible.cfg\n' "$(nproc)"
printf '1 host:   %7.1f s\n' "$one"
printf '3 hosts:  %7.1f s\n' "$three"
printf '3 / 1:    %7.2fx (goal: well under 3x)\n' "$(echo "$three / $one" | bc -l)"
