"""Serve real vLLM on the GPU host through the collection, case by case, and compare with the planner.

    python3 tests/gpu/serve_cases.py CASE [CASE ...]      (from the repo root, on the GPU host)

For each case: playbooks/site.yml renders the instance (vllm_env_backend:
existing, vllm_start_servers: false; the memory planner runs as it does on any
host), run_unit.py starts the unit's exact ExecStart with its environment file
as the service user, and the server is checked as a client would (/health,
/v1/models, a chat completion, a streamed one). vLLM's own accounting is read
from its log and set beside the plan. One JSON line per case goes to
$OUT/results.jsonl; logs to $OUT/<case>.log.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = Path(os.environ.get("OUT", "/tmp/gpufleet-gpu-out"))
MODELS = Path(os.environ.get("GPUFLEET_MODELS", "/models"))
SITE = os.environ.get("GPUFLEET_VLLM_SITE", "/tmp/site")
PORT = 8000
START_TIMEOUT = int(os.environ.get("GPUFLEET_START_TIMEOUT", "420"))
UNIT = "/etc/systemd/system/vllm@main.service"
PLAN = "/etc/vllm/main.plan.json"

QWEN, LLAMA = "qwen2-1.5b", "llama3.1-8b"
# name: (model, role variables, what vLLM must do)
CASES: dict[str, tuple[str, dict, str]] = {
    "qwen-seed": (QWEN, {"vllm_gpu_memory_utilization": 0.85, "vllm_max_model_len": 2048}, "serve"),
    "llama-full": (LLAMA, {"vllm_gpu_memory_utilization": 0.9}, "serve"),
    "llama-edge-fits": (LLAMA, {"vllm_gpu_memory_utilization": 0.25}, "edge-fits"),
    "llama-edge-refused": (LLAMA, {"vllm_gpu_memory_utilization": 0.25}, "edge-refused"),
    "qwen-tp2": (QWEN, {"vllm_gpu_memory_utilization": 0.85, "vllm_max_model_len": 2048,
                        "vllm_tensor_parallel_size": 2}, "serve"),
    "llama-tp2": (LLAMA, {"vllm_gpu_memory_utilization": 0.9, "vllm_tensor_parallel_size": 2}, "serve"),
    # Calibration of what vLLM measures at start: batch tokens and sequences varied.
    "qwen-t2048": (QWEN, {"vllm_gpu_memory_utilization": 0.85, "vllm_max_model_len": 2048,
                          "vllm_max_num_batched_tokens": 2048}, "start"),
    "qwen-t16384": (QWEN, {"vllm_gpu_memory_utilization": 0.85, "vllm_max_model_len": 16384,
                           "vllm_max_num_batched_tokens": 16384}, "start"),
    "llama-t2048": (LLAMA, {"vllm_gpu_memory_utilization": 0.9, "vllm_max_num_batched_tokens": 2048}, "start"),
    "llama-t16384": (LLAMA, {"vllm_gpu_memory_utilization": 0.9, "vllm_max_num_batched_tokens": 16384}, "start"),
    "llama-s256": (LLAMA, {"vllm_gpu_memory_utilization": 0.9, "vllm_max_num_seqs": 256}, "start"),
    "qwen-s256": (QWEN, {"vllm_gpu_memory_utilization": 0.85, "vllm_max_model_len": 2048,
                         "vllm_max_num_seqs": 256}, "start"),
    # vLLM must refuse what is not free after CUDA's context; so must the planner.
    "llama-util-0.995": (LLAMA, {"vllm_gpu_memory_utilization": 0.995, "vllm_max_model_len": 8192}, "refused"),
}
EDGE_MARGIN = 0.015  # the edge pair sits 1.5% either side of the planner's capacity

LOG_PATTERNS = {
    "kv_tokens": r"GPU KV cache size: ([\d,]+) tokens",
    "available_kv_gib": r"Available KV cache memory: ([\d.]+) GiB",
    "weights_gib": r"Actual usage is ([\d.]+) GiB for weight",
    "activation_gib": r"([\d.]+) GiB for peak activation",
    "non_torch_gib": r"([\d.]+) GiB for non-torch memory",
    "cudagraph_gib": r"([\d.]+) GiB for CUDAGraph memory",
    "refusal": r"(To serve at least one request with the model's max seq len[^\n]*)",
    "free_refusal": r"(Free memory on device[^\n]*is less than[^\n]*)",
    "free_at_start_gib": r"Free memory on device \(([\d.]+)/[\d.]+ GiB\) on startup",
    "runner": r"(Using V2 Model Runner)",
}


def log(msg: str) -> None:
    print(msg, flush=True)


def play(case: str, variables: dict, mode: str) -> tuple[int, str]:
    """Run site.yml for one case; returns (rc, output)."""
    extra = dict(variables, vllm_memory_plan_mode=mode)
    path = OUT / f"{case}.vars.json"
    path.write_text(json.dumps(extra))
    cmd = ["ansible-playbook", "-i", "tests/gpu/inventory-serve.yml", "playbooks/site.yml", "-e", f"@{path}"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    (OUT / f"{case}.{mode}.play.log").write_text(proc.stdout + proc.stderr)
    return proc.returncode, proc.stdout + proc.stderr


def http(path: str, body: dict | None = None, timeout: float = 60) -> tuple[int, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{PORT}{path}",
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def wait_ready(proc_pid: int) -> tuple[bool, float]:
    start = time.monotonic()
    while time.monotonic() - start < START_TIMEOUT:
        if not alive(proc_pid):
            return False, time.monotonic() - start
        if http("/health", timeout=2)[0] == 200:
            return True, time.monotonic() - start
        time.sleep(2)
    return False, time.monotonic() - start


def alive(pid: int) -> bool:
    """The server is run_unit.py's child, not ours: read its state from /proc (a zombie counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def stop(pid: int) -> None:
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 15)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        end = time.monotonic() + wait
        while time.monotonic() < end:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.5)


def wait_gpu_free() -> None:
    """vLLM checks free memory at start: wait until no process holds the GPUs (bounded)."""
    for _ in range(60):
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid", "--format=csv,noheader"],
                             capture_output=True, text=True).stdout.strip()
        if not out:
            return
        time.sleep(1)


def client_checks(served: str) -> dict:
    checks = {}
    status, body = http("/v1/models")
    checks["models"] = status == 200 and served in [m["id"] for m in json.loads(body or b"{}").get("data", [])]
    status, body = http("/v1/chat/completions", {
        "model": served, "messages": [{"role": "user", "content": "say hello to the fleet"}],
        "max_tokens": 16, "ignore_eos": True, "temperature": 0.8})
    data = json.loads(body or b"{}") if status == 200 else {}
    checks["chat_tokens"] = (data.get("usage") or {}).get("completion_tokens", 0)
    checks["chat_text"] = ((data.get("choices") or [{}])[0].get("message") or {}).get("content", "")[:80]
    checks["chat"] = status == 200 and checks["chat_tokens"] == 16
    req = urllib.request.Request(f"http://127.0.0.1:{PORT}/v1/chat/completions", data=json.dumps({
        "model": served, "messages": [{"role": "user", "content": "hello fleet"}], "max_tokens": 16,
        "ignore_eos": True, "stream": True}).encode(), headers={"Content-Type": "application/json"})
    chunks, done = 0, False
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            for raw in resp:
                line = raw.decode().strip()
                if line == "data: [DONE]":
                    done = True
                elif line.startswith("data: "):
                    delta = json.loads(line[6:])["choices"][0].get("delta", {})
                    chunks += 1 if delta.get("content") else 0
    except OSError:
        pass
    checks["stream_chunks"] = chunks
    checks["stream"] = done and chunks > 0
    return checks


def parse_log(text: str) -> dict:
    found = {}
    for key, pattern in LOG_PATTERNS.items():
        match = re.search(pattern, text)
        if match:
            value = match.group(1)
            found[key] = int(value.replace(",", "")) if key == "kv_tokens" else (
                value if not re.fullmatch(r"[\d.]+", value) else float(value))
    return found


def edge_length(variables: dict, kind: str) -> tuple[int, dict]:
    """A max_model_len EDGE_MARGIN inside (fits) or outside (refused) the planner's capacity."""
    rc, _ = play("edge-probe", variables, "report")
    plan = json.loads(Path(PLAN).read_text())
    block = plan["block_size"]
    capacity = (plan["kv_cache_blocks"] - 1) * block  # vLLM keeps one block back
    if kind == "edge-fits":
        length = math.floor(capacity * (1 - EDGE_MARGIN) / block) * block
    else:
        length = math.ceil(capacity * (1 + EDGE_MARGIN) / block) * block
    return length, plan


def run_case(name: str) -> dict:
    model, variables, expect = CASES[name]
    variables = dict(variables, vllm_model=str(MODELS / model), vllm_served_model_name=model)
    record: dict = {"case": name, "model": model, "expect": expect}
    if expect.startswith("edge"):
        length, probe = edge_length(variables, expect)
        variables["vllm_max_model_len"] = length
        record["probe_capacity_tokens"] = (probe["kv_cache_blocks"] - 1) * probe["block_size"]
    record["vars"] = {k: v for k, v in variables.items() if k != "vllm_model"}
    # What a user gets: the planner in check mode, before anything starts.
    rc, output = play(name, variables, "check")
    record["check_rc"] = rc
    messages = re.findall(r"msg: (.*?)(?:\n\S|\Z)", output, re.S)
    record["check_message"] = next((" ".join(m.split()) for m in messages if "vllm_max_model_len" in m), "")
    if rc != 0:
        # Render it anyway to see what vLLM itself does with these flags.
        rc, output = play(name, variables, "report")
        record["render_rc"] = rc
        if rc != 0:
            record["error"] = "render failed: " + output[-2000:]
            return record
    plan = json.loads(Path(PLAN).read_text())
    record["plan"] = {k: plan.get(k) for k in ("verdict", "kv_capacity_tokens", "kv_cache_blocks", "max_model_len",
                                                "kv_budget_bytes", "weight_bytes_per_gpu", "requested_bytes",
                                                "reserve_mib", "gpu_memory_total_mib", "message")}
    record["plan"].update({k: plan[k] for k in plan if k.startswith("overhead")})
    record["exec_start"] = next(l for l in open(UNIT) if l.startswith("ExecStart="))[len("ExecStart="):].strip()
    wait_gpu_free()
    log_path = OUT / f"{name}.log"
    log_path.write_text("")
    pid = int(subprocess.run([sys.executable, str(REPO / "tests/gpu/run_unit.py"), UNIT, str(log_path)],
                             capture_output=True, text=True, check=True).stdout)
    ready, seconds = wait_ready(pid)
    record["ready"], record["seconds_to_ready_or_exit"] = ready, round(seconds, 1)
    if ready:
        record["client"] = client_checks(model)
    stop(pid)
    record["vllm"] = parse_log(log_path.read_text(errors="replace"))
    planned, measured = record["plan"]["kv_capacity_tokens"], record["vllm"].get("kv_tokens")
    if planned and measured:
        record["planner_over_vllm"] = round(planned / measured, 4)
    return record


def main(names: list[str]) -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    Path("/etc/systemd/system").mkdir(parents=True, exist_ok=True)
    ok = True
    for name in names:
        start = time.monotonic()
        record = run_case(name)
        record["case_seconds"] = round(time.monotonic() - start, 1)
        with open(OUT / "results.jsonl", "a") as fh:
            fh.write(json.dumps(record) + "\n")
        verdict = judge(record)
        ok &= verdict.startswith("PASS")
        log(f"{verdict}: {name}: plan {record.get('plan', {}).get('kv_capacity_tokens')} tokens "
            f"({record.get('plan', {}).get('verdict')}, check rc={record.get('check_rc')}), vLLM "
            f"{record.get('vllm', {}).get('kv_tokens')} tokens, ratio {record.get('planner_over_vllm')}, "
            f"ready={record.get('ready')} in {record.get('seconds_to_ready_or_exit')} s, client={record.get('client')}, "
            f"vLLM says {({k: v for k, v in record.get('vllm', {}).items() if k != 'kv_tokens'})}")
    return 0 if ok else 1


def judge(r: dict) -> str:
    if "error" in r:
        return "FAIL (" + r["error"][:200] + ")"
    client_ok = r.get("client", {}).get("chat") and r.get("client", {}).get("stream") and r.get("client", {}).get("models")
    if r["expect"] == "serve":
        good = r["check_rc"] == 0 and r.get("ready") and client_ok
    elif r["expect"] == "start":
        good = bool(r.get("ready"))
    elif r["expect"] == "refused":  # the planner and vLLM both refuse at start
        good = r["check_rc"] != 0 and not r.get("ready") and "free_refusal" in r.get("vllm", {})
    elif r["expect"] == "edge-fits":
        good = r["check_rc"] == 0 and r.get("ready") and client_ok
    else:  # edge-refused: the planner fails first, and vLLM refuses too
        good = r["check_rc"] != 0 and not r.get("ready") and "refusal" in r.get("vllm", {})
    return "PASS" if good else "FAIL"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
