#!/usr/bin/env bash
# Sending the controller's wheelhouse to one host: a file-by-file
# ansible.builtin.copy of the directory versus what the vllm role does (tar it
# once on the controller, send the one archive with ansible.builtin.unarchive).
# Prints both wall times and their ratio; asserts nothing about time.
# Needs what `make demo` builds: .venv, the image, .cache/wheelhouse.
source "$(dirname "$0")/lib.sh"
name="${GPUFLEET_BENCH_PREFIX:-gpufleet-bench-transfer}-1"
wheelhouse="$root/.cache/wheelhouse"

start_hosts "$work/hosts.ini" "$name"
cat >"$work/transfer.yml" <<YAML
- name: Send the wheelhouse both ways
  hosts: gpu_hosts
  gather_facts: false
  tasks:
    - name: Copy the wheelhouse file by file
      ansible.builtin.copy: {src: "$wheelhouse/", dest: /opt/by-file/, mode: "0644"}
      tags: by_file
    - name: Pack the wheelhouse on the controller
      ansible.builtin.command: tar -cf "$work/wheelhouse.tar" -C "$wheelhouse" .
      delegate_to: localhost
      tags: archive
    - name: Create the destination
      ansible.builtin.file: {path: /opt/by-archive, state: directory, mode: "0755"}
      tags: archive
    - name: Send and unpack the one archive
      ansible.builtin.unarchive: {src: "$work/wheelhouse.tar", dest: /opt/by-archive}
      tags: archive
YAML

timed() {  # timed <tag>: wall seconds of the play run with that tag
  local start end
  start=$(date +%s.%N)
  "$root/.venv/bin/ansible-playbook" -i "$work/hosts.ini" "$work/transfer.yml" -t "$1" >"$work/$1.log" 2>&1 \
    || { tail -20 "$work/$1.log" >&2; exit 1; }
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}
by_file=$(timed by_file)
by_archive=$(timed archive)
same=$(podman exec "$name" sh -c 'cd /opt/by-file && find . -type f | sort | xargs sha256sum' | sha256sum)
same2=$(podman exec "$name" sh -c 'cd /opt/by-archive && find . -type f | sort | xargs sha256sum' | sha256sum)
[[ "$same" == "$same2" ]] || { echo "the two copies differ" >&2; exit 1; }

printf 'wheelhouse: %s files, %s\n' "$(find "$wheelhouse" -type f | wc -l)" "$(du -sh "$wheelhouse" | cut -f1)"
printf 'file by file:   %7.1f s\n' "$by_file"
printf 'one archive:    %7.1f s\n' "$by_archive"
printf 'by file / archive: %5.1fx (same bytes on the host)\n' "$(echo "$by_file / $by_archive" | bc -l)"
