#!/usr/bin/env bash
# One-time set-up of this machine as a controller: host packages, podman, the
# tool venv, the test image, and the test assets. Safe to run again.
source "$(dirname "$0")/lib.sh"

log "Installing host packages (podman, runc, debootstrap)"
need=()
for pkg in podman runc debootstrap uidmap python3-venv; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if ((${#need[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

log "Configuring podman to use runc and limits vLLM can live with"
# crun fails on this kind of host; nproc above 32768 is refused by setrlimit.
mkdir -p /etc/containers
conf=/etc/containers/containers.conf
want="$(cat <<'CONF'
# Managed by gpufleet.vllm scripts/setup.sh
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
# The vLLM engine needs about 160 MiB of /dev/shm; podman's default is 64 MiB.
shm_size = "1g"

[engine]
runtime = "runc"
CONF
)"
if [[ ! -f $conf ]] || [[ "$(cat "$conf")" != "$want" ]]; then
  printf '%s\n' "$want" >"$conf"
fi

log "Creating the tool venv at $VENV"
[[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REPO_ROOT/requirements-dev.txt"

log "Linking the repo as collection gpufleet.vllm"
mkdir -p "$REPO_ROOT/.collections/ansible_collections/gpufleet"
ln -sfn ../../.. "$REPO_ROOT/.collections/ansible_collections/gpufleet/vllm"

# The image (debootstrap) and the wheelhouse (pip) wait on different servers: build both at once.
mkdir -p "$CACHE"
image_log="$CACHE/build-image.log"
"$REPO_ROOT/scripts/build-image.sh" >"$image_log" 2>&1 &
image_pid=$!
"$REPO_ROOT/scripts/build-test-assets.sh"
if ! wait "$image_pid"; then
  cat "$image_log" >&2
  echo "building the test image failed (log above)" >&2
  exit 1
fi
cat "$image_log"
log "Set-up complete"
