# Shared settings for the scripts in this folder; sourced, not run.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${GPUFLEET_VENV:-$REPO_ROOT/.venv}"
CACHE="${GPUFLEET_CACHE:-$REPO_ROOT/.cache}"
IMAGE="${GPUFLEET_IMAGE:-localhost/gpufleet-debian12}"
WHEELHOUSE="$CACHE/wheelhouse"
# Ray for the multi-node scenario, kept apart so single-node hosts are not sent it.
RAY_WHEELHOUSE="$CACHE/ray-wheelhouse"
RAY_SPEC="ray==$(sed -n 's/^vllm_ray_version: "\(.*\)"$/\1/p' "$REPO_ROOT/roles/vllm/defaults/main.yml")"
TINY_MODEL="$CACHE/models/tiny-chat"
TORCH_WHEEL_DIR="${GPUFLEET_TORCH_WHEEL_DIR:-/opt/wheels}"
export ANSIBLE_CONFIG="$REPO_ROOT/ansible.cfg"
export PATH="$VENV/bin:$PATH"
log() { printf '\n==> %s\n' "$*"; }
