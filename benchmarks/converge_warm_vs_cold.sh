#!/usr/bin/env bash
# Cold converge (fresh container: packages, env, model, server start) versus a
# warm re-run of playbooks/site.yml on the same host, measured in one run.
# Prints both durations, their ratio and the warm run's changed count; it asserts
# nothing about time (machines differ), only that the warm run changed nothing.
# Needs what `make demo` builds: .venv, the image, .cache/wheelhouse, .cache/models.
source "$(dirname "$0")/lib.sh"
name="${GPUFLEET_BENCH_CONTAINER:-gpufleet-bench-1}"

start_hosts "$work/inventory/hosts.ini" "$name"
read -r cold cold_changed < <(converge cold "$work/inventory/hosts.ini")
read -r warm warm_changed < <(converge warm "$work/inventory/hosts.ini")
printf 'cold converge: %6.1f s (changed=%s)\n' "$cold" "$cold_changed"
printf 'warm re-run:   %6.1f s (changed=%s)\n' "$warm" "$warm_changed"
printf 'warm / cold:   %6.1f %% (goal: <= 15 %%)\n' "$(echo "100 * $warm / $cold" | bc -l)"
if [ "$warm_changed" != 0 ]; then
  echo "the warm re-run changed $warm_changed task(s); it must change nothing" >&2
  exit 1
fi
