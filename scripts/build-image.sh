#!/usr/bin/env bash
# Build the Debian 12 systemd image the Molecule scenarios boot (no registry needed).
source "$(dirname "$0")/lib.sh"
if podman image exists "$IMAGE"; then
  log "Image $IMAGE already present"
  exit 0
fi
log "Building $IMAGE with debootstrap (a few minutes)"
rootfs="$(mktemp -d /var/tmp/gpufleet-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,python3,iproute2,ca-certificates,sudo \
  bookworm "$rootfs" "${GPUFLEET_DEBIAN_MIRROR:-http://deb.debian.org/debian}" >/dev/null
# Containers have no console to wait on and no hardware clock to sync.
rm -f "$rootfs"/etc/systemd/system/getty.target.wants/* "$rootfs"/etc/machine-id
touch "$rootfs"/etc/machine-id
tar -C "$rootfs" -c . | podman import --change 'CMD ["/lib/systemd/systemd"]' - "$IMAGE" >/dev/null
log "Built $IMAGE"
