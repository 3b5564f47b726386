#!/usr/bin/env bash
# Run HERE (a machine with PyPI), from the repo root: gathers what a lent GPU
# machine (no network; Python 3.12, torch 2.11.0+cu130) needs to serve vLLM
# through the collection, and cuts it into chunks one `run` call can carry.
#   tests/gpu/prepare_vllm_stash.sh            -> .gpu/c0 .. .gpu/cN (git-ignored)
# Then carry one chunk per call (tests/gpu/README.md has the sequence).
set -euo pipefail
VLLM_VERSION="${VLLM_VERSION:-0.26.0}"
CHUNK_MIB="${CHUNK_MIB:-55}"   # the working tree travels too; 64 MiB is the limit
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="${WORK:-$REPO/.cache/gpu-stash}"
OUTDIR="$REPO/.gpu"
PLATFORMS=()
for p in manylinux_2_28 manylinux_2_17 manylinux2014 manylinux_2_24 manylinux_2_27 manylinux_2_31 \
         manylinux_2_34 manylinux_2_35 manylinux1 linux; do PLATFORMS+=(--platform "${p}_x86_64"); done
download() { python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
               --implementation cp "${PLATFORMS[@]}" -d "$WORK/wheels" "$@"; }

mkdir -p "$WORK/wheels" "$OUTDIR"
[[ -x $WORK/uv/bin/uv ]] || { python3 -m venv "$WORK/uv" && "$WORK/uv/bin/pip" install -q uv; }
download "vllm==$VLLM_VERSION"
# vLLM's own requirements less what the machine has and the optional kernels;
# xgrammar 0.2.1 because newer ones need a newer apache-tvm-ffi than vLLM pins.
printf 'vllm==%s\nxgrammar==0.2.1\n' "$VLLM_VERSION" > "$WORK/req.in"
"$WORK/uv/bin/uv" pip compile -q --python-version 3.12 --python-platform x86_64-manylinux_2_28 \
  --excludes <(grep -v '^#' "$REPO/tests/gpu/device-packages.txt") --find-links "$WORK/wheels" \
  "$WORK/req.in" -o "$WORK/req.txt"
grep '==' "$WORK/req.txt" | sed 's/ .*//' | grep -v "^vllm==" > "$WORK/deps.txt"
# Imported at start although vLLM's requirements leave them to the kernels it skips here.
printf 'apache-tvm-ffi==0.1.10\nnvtx==0.2.15\n' >> "$WORK/deps.txt"
# ansible-core for the collection itself (jinja2, PyYAML, cryptography are in the list or on the machine).
printf 'ansible-core==2.19.14\nresolvelib==1.0.1\n' >> "$WORK/deps.txt"
download -r "$WORK/deps.txt"
# Exactly the wheels of this resolution, one version each.
keep=$(cd "$WORK/wheels" && for spec in "vllm==$VLLM_VERSION" $(cat "$WORK/deps.txt"); do
  name=${spec%%==*}; ver=${spec#*==}; norm=$(echo "$name" | tr 'A-Z-.' 'a-z__')
  ls | awk -v n="$norm" -v v="$ver" 'BEGIN{IGNORECASE=1} { split($0,a,"-"); x=a[1]; gsub(/[-.]/,"_",x);
      if (tolower(x)==n && a[2]==v) print }'
done)
rm -rf "$WORK/tar" && mkdir -p "$WORK/tar"
(cd "$WORK/wheels" && tar -cf "$WORK/tar/stash.tar" $keep)
echo "$(echo "$keep" | wc -l) wheels, $(du -h "$WORK/tar/stash.tar" | cut -f1)"
rm -rf "$OUTDIR"/c*
split -b "${CHUNK_MIB}M" -d -a 1 "$WORK/tar/stash.tar" "$WORK/tar/part-"
i=0
for part in "$WORK"/tar/part-*; do
  mkdir -p "$OUTDIR/c$i" && mv "$part" "$OUTDIR/c$i/"
  i=$((i + 1))
done
(cd "$WORK/tar" && sha256sum stash.tar > "$OUTDIR/stash.sha256")
# The roles also name community.general.ufw; the tool venv's copy travels as .gpu/cg.
mkdir -p "$OUTDIR/cg"
tar -czf "$OUTDIR/cg/community-general.tgz" -C "$(ls -d "$REPO"/.venv/lib/python3*/site-packages | head -1)" \
  ansible_collections/community/general
ls -la "$OUTDIR"/c*/ "$OUTDIR/stash.sha256"
echo "chunks: $i (carry .gpu/cK in call K; tests/gpu/README.md)"
