#!/usr/bin/env bash
# Build the collection tarball and install it into a scratch path, as a user would.
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
ansible-galaxy collection build --force --output-path "$out" .
tarball=("$out"/gpufleet-vllm-*.tar.gz)
ansible-galaxy collection install --force --offline --no-deps -p "$out/installed" "${tarball[0]}"
test -f "$out/installed/ansible_collections/gpufleet/vllm/roles/vllm/tasks/main.yml"
ANSIBLE_COLLECTIONS_PATH="$out/installed" ansible-doc -t filter gpufleet.vllm.vllm_release >/dev/null
# A filter that shares its .py file with others must still show its own doc (<name>.yml).
ANSIBLE_COLLECTIONS_PATH="$out/installed" ansible-doc -t filter --json gpufleet.vllm.systemd_quote |
  grep -q '"name": "systemd_quote"'
echo "built and installed ${tarball[0]##*/}"
