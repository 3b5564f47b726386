#!/usr/bin/env bash
# Entry point of the conda Molecule scenario (scripts/test.sh calls it).
# It needs a Miniforge installer and a conda channel this machine can reach,
# so it runs only when the caller names them and otherwise says it skipped.
#   GPUFLEET_CONDA_INSTALLER_URL     installer URL as the container sees it
#   GPUFLEET_CONDA_INSTALLER_SHA256  its sha256
#   GPUFLEET_CONDA_CHANNEL           channel URL with python (file:// or http://)
#   GPUFLEET_CONDA_SHARE             optional; mounted read-only at /srv/gpufleet-conda
#                                    (default .cache/conda) for file:// URLs
# Extra arguments go to "molecule test".
source "$(dirname "$0")/../../scripts/lib.sh"

required=(GPUFLEET_CONDA_INSTALLER_URL GPUFLEET_CONDA_INSTALLER_SHA256 GPUFLEET_CONDA_CHANNEL)
given=() missing=()
for name in "${required[@]}"; do
  if [[ -n "${!name:-}" ]]; then given+=("$name"); else missing+=("$name"); fi
done
if ((${#given[@]} == 0)); then
  echo "SKIPPED: conda scenario needs GPUFLEET_CONDA_INSTALLER_URL, GPUFLEET_CONDA_INSTALLER_SHA256" \
    "and GPUFLEET_CONDA_CHANNEL (GitHub and conda channels are unreachable here); see docs/conda.md"
  exit 0
fi
if ((${#missing[@]})); then
  echo "conda scenario: ${given[*]} set but ${missing[*]} not; set all three, or none to skip" >&2
  exit 2
fi

export GPUFLEET_CONDA_SHARE="${GPUFLEET_CONDA_SHARE:-$CACHE/conda}"
mkdir -p "$GPUFLEET_CONDA_SHARE"
cd "$REPO_ROOT"
exec molecule test -s conda "$@"
