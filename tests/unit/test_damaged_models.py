"""Damaged model directories fail the planner (and the play) naming the file and the key.

vLLM would fail to load each of them; the plan refuses them before any unit changes.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any, Dict

import pytest

from test_memory_plan import QWEN, load, model_dir, run_module, write_safetensors

from ansible_collections.gpufleet.vllm.plugins.module_utils import memory_plan as mp

TENSORS: Dict[str, Any] = {"model.embed_tokens.weight": ("BF16", (471, 128)), "lm_head.weight": ("BF16", (471, 128))}


def header_of(path: str) -> Dict[str, Any]:
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        return json.loads(handle.read(length))


def rewrite_header(path: str, header: Dict[str, Any]) -> None:
    """Same data, another header (the length prefix follows the new JSON)."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        handle.seek(8 + length)
        data = handle.read()
    raw = json.dumps(header).encode("utf-8")
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw + data)


def truncate(path: str, drop: int) -> None:
    size = os.path.getsize(path)
    with open(path, "r+b") as handle:
        handle.truncate(size - drop)


def set_entry(key: str, value: Any):
    def damage(path: str) -> None:
        header = header_of(path)
        header["lm_head.weight"][key] = value
        rewrite_header(path, header)
    return damage


def set_length(length: int):
    def damage(path: str) -> None:
        with open(path, "r+b") as handle:
            handle.write(struct.pack("<Q", length))
    return damage


def not_json(path: str) -> None:
    raw = b"{\"lm_head.weight\": {\"dtype\": \"BF16\""
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw)


DAMAGES = [
    ("download stopped in the data", lambda p: truncate(p, 1000), "truncated: tensor lm_head.weight ends at byte"),
    ("download stopped in the header", lambda p: truncate(p, os.path.getsize(p) - 20), "truncated: the header needs"),
    ("under 8 bytes", lambda p: truncate(p, os.path.getsize(p) - 3), "shorter than the 8-byte header length"),
    ("header length nonsense", set_length(2 ** 62), "header length 4611686018427387904"),
    ("header length zero", set_length(0), "header length 0"),
    ("header not JSON", not_json, "not readable JSON"),
    ("unknown dtype", set_entry("dtype", "BF17"), "lm_head.weight has unknown dtype 'BF17'"),
    ("offsets past the end", set_entry("data_offsets", [120576, 10 ** 9]), "ends at byte 1000000000"),
    ("offsets reversed", set_entry("data_offsets", [9, 3]), "data_offsets [9, 3], not [begin, end]"),
    ("shape and bytes disagree", set_entry("shape", [471, 256]), "spans 120576 bytes, its BF16 shape [471, 256]"),
    ("shape not sizes", set_entry("shape", [471, "128"]), "has shape [471, '128']"),
]


@pytest.mark.parametrize("damage, words", [(d, w) for _, d, w in DAMAGES], ids=[i for i, _, _ in DAMAGES])
def test_damaged_safetensors_is_refused_naming_the_file(tmp_path: Any, damage: Any, words: str) -> None:
    path = str(tmp_path / "model.safetensors")
    write_safetensors(path, TENSORS)
    assert mp.read_weight_files(str(tmp_path)).stored_bytes == 2 * 471 * 128 * 2
    damage(path)
    with pytest.raises(ValueError) as caught:
        mp.read_weight_files(str(tmp_path))
    message = str(caught.value)
    assert message.startswith(path + ": ")
    assert words in message
    assert "Fix:" in message and "vllm_model_src" in message


def test_broken_index_is_refused_naming_it(tmp_path: Any) -> None:
    (tmp_path / "model.safetensors.index.json").write_text('{"weight_map": {"a": ')
    with pytest.raises(ValueError, match=r"model.safetensors.index.json: not readable JSON.*Fix:"):
        mp.read_weight_files(str(tmp_path))


# --------------------------------------------------------------------------- #
# The module, run as Ansible runs it
# --------------------------------------------------------------------------- #

GPU = {"gpu_memory_total_mib": 8192, "gpu_memory_utilization": 0.85}


@pytest.mark.parametrize("key, value", [("num_key_value_heads", 0), ("max_position_embeddings", "131072"),
                                        ("num_attention_heads", 12.0)])
def test_module_fails_naming_the_damaged_key(tmp_path: Any, key: str, value: Any) -> None:
    folder = model_dir(tmp_path, QWEN)
    config = load(QWEN)
    config[key] = value
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as handle:
        json.dump(config, handle)
    result = run_module({"model_path": folder, **GPU}, tmp_path)
    assert result["failed"] is True and result["changed"] is False
    assert f"{os.path.join(folder, 'config.json')} {key} is {json.dumps(value)}: expected" in result["msg"]
    assert "Fix:" in result["msg"] and "vllm_model" in result["msg"]
    assert "plan" not in result


def test_module_fails_on_a_truncated_safetensors_instead_of_estimating(tmp_path: Any) -> None:
    folder = model_dir(tmp_path, "tiny-chat")
    path = os.path.join(folder, "model.safetensors")
    write_safetensors(path, TENSORS)
    args = {"model_path": folder, "device": "cpu", "cpu_kvcache_space_gib": 1, "mode": "report"}
    assert run_module(args, tmp_path)["plan"]["weights_source"] == "safetensors headers"
    truncate(path, 4096)
    result = run_module(args, tmp_path)
    assert result["failed"] is True and result["changed"] is False
    assert f"{path}: truncated: tensor lm_head.weight ends at byte" in result["msg"]
    assert "Fix:" in result["msg"] and "re-download the model" in result["msg"]
    assert not result.get("warnings")
