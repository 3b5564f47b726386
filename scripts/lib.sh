# Shared settings for the scripts in this folder; sourced, not run.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${GPUFLEET_VENV:-$REPO_ROOT/.venv}"
CACHE="${GPUFLEET_CACHE:-$REPO_ROOT/.cache}"
IMAGE="${GPUFLEET_IMAGE:-localhost/gpufleet-debian12}"
WHEELHOUSE="$CACHE/wheelhouse"
TINY_MODEL="$CACHE/models/tiny-chat"
TORCH_WHEEL_DIR="${GPUFLEET_TORCH_WHEEL_DIR:-/opt/wheels}"
export ANSIBLE_CONFIG="$REPO_ROOT/ansible.cfg"
export PATH="$VENV/bin:$PATH"
log() { printf '\n==> %s\n' "$*"; }
