#!/usr/bin/env bash
# Remove what 'make demo' left running: the container of the Molecule default
# scenario (gpufleet-vllm-1), through the tool venv's Molecule as demo.sh made it.
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
if ! command -v molecule >/dev/null; then
  echo "Molecule is not in $VENV/bin, so 'make demo' has not run here. Fix: nothing to remove, or run 'make setup' first." >&2
  exit 1
fi
log "Removing the demo container (molecule destroy -s default)"
molecule destroy -s default
