#!/usr/bin/env bash
# Run ON the lent GPU host, from the repo root, once the stash chunks sit in
# /tmp/stash (tests/gpu/README.md): installs vLLM, its missing dependencies and
# ansible-core into /tmp/site, links the collection, and writes the two
# random-weight models of real shapes under /models. Safe to run again.
set -euo pipefail
STASH=/tmp/stash SITE=/tmp/site
if [[ ! -f $SITE/.complete ]]; then
  cat "$STASH"/part-* > /tmp/stash.tar
  (cd /tmp && sed 's#  .*#  /tmp/stash.tar#' "$OLDPWD/.gpu/stash.sha256" | sha256sum -c -)
  rm -rf /tmp/wheels && mkdir -p /tmp/wheels && tar -xf /tmp/stash.tar -C /tmp/wheels && rm /tmp/stash.tar
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" /tmp/wheels/*.whl
  touch "$SITE/.complete"
fi
export PYTHONPATH=$SITE PATH=$SITE/bin:$PATH
python3 -c 'import vllm, vllm.entrypoints.openai.api_server; print("vllm", vllm.__version__)' 2>&1 | tail -1
mkdir -p .collections/ansible_collections/gpufleet
ln -sfn ../../.. .collections/ansible_collections/gpufleet/vllm
# community.general (the firewall tasks name community.general.ufw), carried as .gpu/cg.
[[ -f .gpu/cg/community-general.tgz ]] && tar -xzf .gpu/cg/community-general.tgz -C .collections
for shape in qwen2-1.5b llama3.1-8b; do
  python3 tests/gpu/make_shaped_model.py "$shape" "/models/$shape"
done
chmod 755 /models /models/*
