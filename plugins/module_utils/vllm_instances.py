"""Resolve vllm_instances into complete per-unit settings, check them, build argv.

Every value an instance leaves out falls back to the role variable of the same
name (``port`` -> ``vllm_port``), so a one-model host is a one-item list.
Error messages name the variable a user has to edit, wherever the value came from.
"""

from __future__ import annotations

import re
from typing import Any, Optional

# Keys an instance may set; each falls back to vllm_<key>.
INHERITED_KEYS: tuple[str, ...] = (
    "model",
    "model_src",
    "model_revision",
    "served_model_name",
    "host",
    "port",
    "dtype",
    "max_model_len",
    "gpu_memory_utilization",
    "max_num_seqs",
    "max_num_batched_tokens",
    "kv_cache_dtype",
    "tensor_parallel_size",
    "pipeline_parallel_size",
    "trust_remote_code",
    "multi_node",
    "extra_args",
    "environment",
    "cpu_kvcache_space_gib",
)
INSTANCE_ONLY_KEYS: tuple[str, ...] = ("name", "cuda_visible_devices")
DTYPES = ("auto", "half", "float16", "bfloat16", "float", "float32")
KV_CACHE_DTYPES = ("auto", "fp8", "fp8_e4m3", "fp8_e5m2")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
HUB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


def _origin(index: int, key: str, item: dict[str, Any]) -> str:
    """The variable a user edits to change ``key`` of instance ``index``."""
    return f"vllm_instances[{index}].{key}" if key in item else f"vllm_{key}"


def _model_kind(model: str, model_src: str) -> str:
    if model_src:
        return "controller"
    if model.startswith("/"):
        return "host_path"
    return "hub"


INT_KEYS = ("port", "max_model_len", "max_num_seqs", "max_num_batched_tokens", "tensor_parallel_size",
            "pipeline_parallel_size", "cpu_kvcache_space_gib")
FLOAT_KEYS = ("gpu_memory_utilization",)


BOOL_KEYS = ("trust_remote_code", "multi_node")
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0", "")


def _coerce(key: str, value: Any) -> Any:
    """Numbers and booleans given as strings (``-e vllm_port=8001``) become typed; anything else is left for the checks."""
    if key in BOOL_KEYS and isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    if not isinstance(value, str) or value.strip() == "":
        return value
    text = value.strip()
    try:
        if key in INT_KEYS and re.fullmatch(r"[+-]?\d+", text):
            return int(text)
        if key in FLOAT_KEYS:
            return float(text)
    except ValueError:
        pass
    return value


def resolve_instances(
    instances: list[dict[str, Any]], defaults: dict[str, Any], model_dir: str
) -> list[dict[str, Any]]:
    """Fill each instance from ``defaults`` and derive where its model lives."""
    resolved = []
    for index, item in enumerate(instances or []):
        item = dict(item or {})
        inst: dict[str, Any] = {key: defaults.get(key) for key in INHERITED_KEYS}
        inst.update(item)
        for key in INT_KEYS + FLOAT_KEYS + BOOL_KEYS:
            inst[key] = _coerce(key, inst.get(key))
        inst["index"] = index
        inst["origins"] = {key: _origin(index, key, item) for key in INHERITED_KEYS}
        inst["unknown_keys"] = sorted(set(item) - set(INHERITED_KEYS) - set(INSTANCE_ONLY_KEYS))
        inst.setdefault("cuda_visible_devices", "")
        model = str(inst.get("model") or "")
        model_src = str(inst.get("model_src") or "").rstrip("/")
        kind = _model_kind(model, model_src)
        inst["model_kind"] = kind
        if kind == "controller":
            base = model_src.rsplit("/", 1)[-1]
            inst["model_path"] = f"{model_dir}/{base}"
            fallback_name = base
        elif kind == "host_path":
            inst["model_path"] = model.rstrip("/")
            fallback_name = inst["model_path"].rsplit("/", 1)[-1]
        else:
            inst["model_path"] = f"{model_dir}/{model.replace('/', '--')}" if model else ""
            fallback_name = model
        inst["served_model_name"] = inst.get("served_model_name") or fallback_name
        inst["type_problems"] = []
        raw_args, raw_env = inst.get("extra_args") or [], inst.get("environment") or {}
        # A string here would be iterated into single characters on the command line.
        if not isinstance(raw_args, (list, tuple)):
            inst["type_problems"].append(
                f"{inst['origins']['extra_args']}={raw_args!r} is {_kind(raw_args)}, not a list. Fix: give "
                "one list item per token, e.g. ['--enforce-eager', '--max-num-batched-tokens', '4096'].")
            raw_args = []
        if not isinstance(raw_env, dict):
            inst["type_problems"].append(
                f"{inst['origins']['environment']}={raw_env!r} is {_kind(raw_env)}, not a mapping. Fix: give "
                "NAME: value pairs, e.g. {VLLM_LOGGING_LEVEL: DEBUG}.")
            raw_env = {}
        inst["extra_args"] = [str(a) for a in raw_args]
        inst["environment"] = {str(k): str(v) for k, v in raw_env.items()}
        resolved.append(inst)
    return resolved


def _kind(value: Any) -> str:
    """A value's type for people (Ansible hands strings over as its own str subclass)."""
    for kind, name in ((str, "a string"), (dict, "a mapping"), (list, "a list"), (bool, "a boolean")):
        if isinstance(value, kind):
            return name
    return "a number" if isinstance(value, (int, float)) else f"a {type(value).__name__}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _as_number(value: Any) -> Optional[float]:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def instance_problems(resolved: list[dict[str, Any]]) -> list[str]:
    """Every problem in the resolved instances, each naming the variable and the fix."""
    problems: list[str] = []
    if not resolved:
        return ["vllm_instances is empty. Fix: list at least one instance, e.g. [{name: main}]."]
    seen_names: dict[str, int] = {}
    seen_ports: dict[tuple[str, int], str] = {}
    for inst in resolved:
        i, org = inst["index"], inst["origins"]
        name = str(inst.get("name") or "")
        problems.extend(inst.get("type_problems", []))
        if inst["unknown_keys"]:
            problems.append(
                f"vllm_instances[{i}] has unknown keys {inst['unknown_keys']}. Fix: use only "
                f"{', '.join(INSTANCE_ONLY_KEYS + INHERITED_KEYS)}."
            )
        if not NAME_RE.match(name):
            problems.append(
                f"vllm_instances[{i}].name={name!r} is not a valid instance name. Fix: use 1-32 "
                "lower-case letters, digits, '-' or '_', starting with a letter or digit."
            )
        elif name in seen_names:
            problems.append(
                f"vllm_instances[{i}].name={name!r} repeats vllm_instances[{seen_names[name]}].name. "
                "Fix: give each instance its own name."
            )
        else:
            seen_names[name] = i
        if not inst.get("model") and not inst.get("model_src"):
            problems.append(
                f"{org['model']} is empty for instance {name!r}. Fix: set it to a Hugging Face repo id "
                "(org/name) or an absolute model path on the host, or set vllm_model_src to a "
                "directory on the controller."
            )
        elif inst["model_kind"] == "hub" and not HUB_ID_RE.match(str(inst["model"])):
            problems.append(
                f"{org['model']}={inst['model']!r} is neither a Hugging Face repo id (org/name) "
                "nor an absolute path. Fix: use e.g. Qwen/Qwen2.5-0.5B-Instruct or /srv/models/qwen."
            )
        port = inst.get("port")
        if not _is_int(port) or not 1 <= port <= 65535:
            problems.append(f"{org['port']}={port!r} is not a TCP port. Fix: use an integer from 1 to 65535.")
        else:
            host = str(inst.get("host"))
            clash = next(
                (other for (h, p), other in seen_ports.items() if p == port and (h == host or "0.0.0.0" in (h, host) or "::" in (h, host))),
                None,
            )
            if clash is not None:
                problems.append(
                    f"{org['port']}={port} collides with instance {clash!r} on the same address. "
                    "Fix: give each instance its own vllm_instances[N].port."
                )
            seen_ports[(host, port)] = name
        util = _as_number(inst.get("gpu_memory_utilization"))
        if util is None or not 0 < util <= 1:
            problems.append(
                f"{org['gpu_memory_utilization']}={inst.get('gpu_memory_utilization')!r} is outside (0, 1]. "
                "Fix: use a share such as 0.9 (90% of each GPU's memory)."
            )
        for key in ("tensor_parallel_size", "pipeline_parallel_size"):
            value = inst.get(key)
            if not _is_int(value) or value < 1:
                problems.append(f"{org[key]}={value!r} must be an integer >= 1. Fix: use 1 for a single GPU.")
        for key in BOOL_KEYS:
            if not isinstance(inst.get(key), bool) and inst.get(key) is not None:
                problems.append(f"{org[key]}={inst.get(key)!r} must be true or false.")
        mml = inst.get("max_model_len")
        if mml is not None and (not _is_int(mml) or mml < 16):
            problems.append(
                f"{org['max_model_len']}={mml!r} must be null (the model's own limit) or an integer >= 16."
            )
        for key in ("max_num_seqs", "max_num_batched_tokens"):
            value = inst.get(key)
            if value is not None and (not _is_int(value) or value < 1):
                problems.append(f"{org[key]}={value!r} must be null (vLLM's default) or an integer >= 1.")
        if inst.get("dtype") not in DTYPES:
            problems.append(f"{org['dtype']}={inst.get('dtype')!r} is not one of {', '.join(DTYPES)}.")
        if inst.get("kv_cache_dtype") not in KV_CACHE_DTYPES:
            problems.append(
                f"{org['kv_cache_dtype']}={inst.get('kv_cache_dtype')!r} is not one of {', '.join(KV_CACHE_DTYPES)}."
            )
        space = inst.get("cpu_kvcache_space_gib")
        # vLLM's CPU build parses VLLM_CPU_KVCACHE_SPACE with int().
        if not _is_int(space) or space < 1:
            problems.append(
                f"{org['cpu_kvcache_space_gib']}={space!r} must be a whole number of GiB, at least 1 "
                "(vLLM reads VLLM_CPU_KVCACHE_SPACE as an integer)."
            )
        cvd = str(inst.get("cuda_visible_devices") or "")
        if cvd and not re.match(r"^(\d+|GPU-[0-9a-fA-F-]+|MIG-[0-9a-zA-Z/-]+)(,(\d+|GPU-[0-9a-fA-F-]+|MIG-[0-9a-zA-Z/-]+))*$", cvd):
            problems.append(
                f"vllm_instances[{i}].cuda_visible_devices={cvd!r} is not a GPU list. Fix: use indexes or UUIDs, e.g. \"0,1\"."
            )
    return problems


def server_args(inst: dict[str, Any], device: str) -> list[str]:
    """Command-line arguments for vllm.entrypoints.openai.api_server."""
    args = [
        "--model", str(inst["model_path"]),
        "--served-model-name", str(inst["served_model_name"]),
        "--host", str(inst["host"]),
        "--port", str(inst["port"]),
        "--dtype", str(inst["dtype"]),
        "--gpu-memory-utilization", str(inst["gpu_memory_utilization"]),
        "--tensor-parallel-size", str(inst["tensor_parallel_size"]),
    ]
    if inst.get("max_model_len") is not None:
        args += ["--max-model-len", str(inst["max_model_len"])]
    if int(inst.get("pipeline_parallel_size") or 1) > 1:
        args += ["--pipeline-parallel-size", str(inst["pipeline_parallel_size"])]
    if inst.get("max_num_seqs") is not None:
        args += ["--max-num-seqs", str(inst["max_num_seqs"])]
    if inst.get("max_num_batched_tokens") is not None:
        args += ["--max-num-batched-tokens", str(inst["max_num_batched_tokens"])]
    if inst.get("kv_cache_dtype") not in (None, "auto"):
        args += ["--kv-cache-dtype", str(inst["kv_cache_dtype"])]
    if inst.get("trust_remote_code"):
        args.append("--trust-remote-code")
    if inst.get("multi_node"):
        # Tensor parallel inside each host, pipeline parallel across the Ray cluster's hosts.
        args += ["--distributed-executor-backend", "ray"]
    return args + list(inst.get("extra_args") or [])


def systemd_quote(arg: str) -> str:
    """Quote one argument for an ExecStart= line (systemd.service(5) rules)."""
    if arg and re.match(r"^[A-Za-z0-9_@%+=:,./-]+$", arg):
        return arg.replace("%", "%%")
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


PLANNED_KEYS = ("max_model_len", "gpu_memory_utilization")


def apply_plans(instances: list[dict[str, Any]], plans: list[dict[str, Any]], mode: str) -> list[dict[str, Any]]:
    """Instances with the flags the memory planner chose (``auto`` mode) and their plan attached."""
    by_name = {str(p["item"]["name"]): p.get("plan") for p in plans or [] if p.get("plan")}
    planned = []
    for inst in instances:
        plan = by_name.get(str(inst["name"]))
        updated = dict(inst, memory_plan=plan)
        if mode == "auto" and plan:
            updated.update({key: plan[key] for key in PLANNED_KEYS if plan.get(key) is not None})
        planned.append(updated)
    return planned
