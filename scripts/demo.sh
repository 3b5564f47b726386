#!/usr/bin/env bash
# Provision a local Debian 12 container into a vLLM server with playbooks/site.yml
# (the Molecule default scenario) and print a real chat completion from it.
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
INSTANCE=gpufleet-vllm-1
log "Provisioning container $INSTANCE with playbooks/site.yml"
molecule converge -s default
log "Asking the server for a chat completion (with the API key from its root-only env file)"
podman exec -i "$INSTANCE" python3 - <<'PY'
import json, re, urllib.request
key = re.search(r'^VLLM_API_KEY="(.*)"$', open("/etc/vllm/main.env").read(), re.M).group(1)
body = {"model": "tiny-chat", "max_tokens": 24,
        "messages": [{"role": "user", "content": "Say hello to the fleet."}]}
req = urllib.request.Request("http://127.0.0.1:8000/v1/chat/completions", json.dumps(body).encode(),
                             {"Content-Type": "application/json", "Authorization": "Bearer " + key})
with urllib.request.urlopen(req, timeout=120) as resp:
    reply = json.load(resp)
print("model:", reply["model"])
print("completion tokens:", reply["usage"]["completion_tokens"])
print("completion:", json.dumps(reply["choices"][0]["message"]["content"]))
PY
log "Done. The server keeps running: 'podman exec -it $INSTANCE bash' to look around, 'make destroy' to remove it"
