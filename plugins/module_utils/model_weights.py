"""What a model directory's safetensors hold, read from their headers alone.

The tensors themselves are never read: a header names each tensor's dtype,
shape and byte range, which is all the memory planner needs.
"""

from __future__ import annotations

import glob
import json
import math
import os
import struct
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

MiB = 1024 ** 2

# Bytes per element of the safetensors dtypes; floats are recast to the
# serving dtype when loaded, the others (quantized packs, fp8) are kept as is.
SAFETENSORS_FLOAT_BYTES: Dict[str, int] = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}
SAFETENSORS_OTHER_BYTES: Dict[str, float] = {
    "I8": 1, "U8": 1, "BOOL": 1, "I16": 2, "U16": 2, "I32": 4, "U32": 4,
    "I64": 8, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "F4": 0.5,
}
# A safetensors header is JSON of a few MB at most; refuse nonsense lengths.
MAX_SAFETENSORS_HEADER = 256 * MiB


@dataclass(frozen=True)
class WeightFiles:
    """What the safetensors of a model directory hold.

    ``float_params`` are recast to the serving dtype on load, ``fixed_bytes``
    (quantized packs, fp8, integer tensors) are loaded as stored.
    """

    stored_bytes: int
    float_params: int
    fixed_bytes: int
    files: Tuple[str, ...]
    source: str

    def runtime_bytes(self, dtype_bytes: int) -> int:
        return self.float_params * dtype_bytes + self.fixed_bytes


WEIGHTS_FIX = ("Fix: the file is damaged or was not fully downloaded, and vLLM cannot load it either: "
               "re-download the model (vllm_model, or model in vllm_instances) or re-copy vllm_model_src (model_src).")


def _broken(path: str, what: str) -> ValueError:
    return ValueError(f"{path}: {what}. {WEIGHTS_FIX}")


def read_safetensors_header(path: str) -> Dict[str, Any]:
    """The JSON header of one safetensors file, without reading its tensors.

    Layout: 8-byte little-endian header length, then that many bytes of JSON.
    """
    file_size = os.path.getsize(path)
    with open(path, "rb") as handle:
        raw = handle.read(8)
        if len(raw) != 8:
            raise _broken(path, f"not a safetensors file: {len(raw)} bytes, shorter than the 8-byte header length")
        (length,) = struct.unpack("<Q", raw)
        if length <= 0 or length > MAX_SAFETENSORS_HEADER:
            raise _broken(path, f"not a safetensors file: header length {length} "
                                f"(expected 1 to {MAX_SAFETENSORS_HEADER} bytes)")
        header = handle.read(length)
    if len(header) != length:
        raise _broken(path, f"truncated: the header needs {length} bytes, the file ({file_size} bytes) "
                            f"holds {len(header)} after the length")
    try:
        parsed = json.loads(header.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _broken(path, f"the safetensors header is not readable JSON ({exc})") from exc
    if not isinstance(parsed, dict):
        raise _broken(path, "the safetensors header is not a JSON object")
    data_size = file_size - 8 - length
    for name, info in parsed.items():
        if name != "__metadata__":
            _check_entry(name, info, path, data_size)
    return parsed


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_entry(name: str, info: Any, path: str, data_size: int) -> None:
    """What the safetensors library checks on load: known dtype, sane shape, bytes inside the file."""
    if not isinstance(info, dict):
        raise _broken(path, f"tensor {name} is described by {info!r}, not an object")
    dtype = info.get("dtype")
    if dtype not in SAFETENSORS_FLOAT_BYTES and dtype not in SAFETENSORS_OTHER_BYTES:
        raise _broken(path, f"tensor {name} has unknown dtype {dtype!r}")
    shape = info.get("shape", [])
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise _broken(path, f"tensor {name} has shape {shape!r}, not a list of sizes")
    offsets = info.get("data_offsets")
    if offsets is None:
        return
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets)
            and offsets[0] <= offsets[1]):
        raise _broken(path, f"tensor {name} has data_offsets {offsets!r}, not [begin, end]")
    if offsets[1] > data_size:
        raise _broken(path, f"truncated: tensor {name} ends at byte {offsets[1]} of the data, "
                            f"the file holds {max(data_size, 0)} bytes of data")
    elements = 1
    for dim in shape:
        elements *= dim
    expected = int(math.ceil(elements * {**SAFETENSORS_FLOAT_BYTES, **SAFETENSORS_OTHER_BYTES}[dtype]))
    if offsets[1] - offsets[0] != expected:
        raise _broken(path, f"tensor {name} spans {offsets[1] - offsets[0]} bytes, its {dtype} shape "
                            f"{shape} needs {expected}")


def _tensor_bytes(name: str, info: Dict[str, Any], path: str) -> Tuple[str, int, int]:
    """(dtype, elements, bytes) of one header entry checked by read_safetensors_header."""
    dtype = str(info["dtype"])
    elements = 1
    for dim in info.get("shape", []):
        elements *= int(dim)
    offsets = info.get("data_offsets")
    if offsets is not None:
        size = int(offsets[1]) - int(offsets[0])
    elif dtype in SAFETENSORS_FLOAT_BYTES:
        size = elements * SAFETENSORS_FLOAT_BYTES[dtype]
    else:
        size = int(math.ceil(elements * SAFETENSORS_OTHER_BYTES[dtype]))
    return dtype, elements, size


def _weight_file_list(model_dir: str) -> Tuple[List[str], Optional[Dict[str, Any]]]:
    """The safetensors vLLM would load, and the index when there is one.

    With an index only the files it maps are loaded: Mistral repositories ship
    consolidated.safetensors next to the sharded copy, counting both would
    double the weights.
    """
    index_path = os.path.join(model_dir, "model.safetensors.index.json")
    index: Optional[Dict[str, Any]] = None
    if os.path.isfile(index_path):
        try:
            with open(index_path, encoding="utf-8") as handle:
                index = json.load(handle)
        except (UnicodeDecodeError, ValueError) as exc:
            raise _broken(index_path, f"not readable JSON ({exc})") from exc
        if not isinstance(index, dict):
            raise _broken(index_path, "not a JSON object")
        weight_map = index.get("weight_map") or {}
        if not isinstance(weight_map, dict):
            raise _broken(index_path, "weight_map is not a JSON object")
        names = sorted(set(str(v) for v in weight_map.values()))
        return [os.path.join(model_dir, n) for n in names], index
    files = sorted(glob.glob(os.path.join(model_dir, "*.safetensors")))
    sharded = [f for f in files if not os.path.basename(f).startswith("consolidated")]
    return (sharded or files), None


def read_weight_files(model_dir: str) -> Optional[WeightFiles]:
    """Sum the tensors of a model directory's safetensors from their headers.

    Falls back to ``metadata.total_size`` of model.safetensors.index.json when
    the shards are not all there; None when neither exists (then the caller
    estimates from config.json).
    """
    files, index = _weight_file_list(model_dir)
    present = [f for f in files if os.path.isfile(f)]
    if files and len(present) == len(files):
        stored = float_params = fixed = 0
        for path in present:
            for name, info in read_safetensors_header(path).items():
                if name == "__metadata__":
                    continue
                dtype, elements, size = _tensor_bytes(name, info, path)
                stored += size
                if dtype in SAFETENSORS_FLOAT_BYTES:
                    float_params += elements
                else:
                    fixed += size
        return WeightFiles(stored, float_params, fixed, tuple(os.path.basename(f) for f in present),
                           "safetensors headers")
    total = ((index or {}).get("metadata") or {}).get("total_size")
    if total:
        return WeightFiles(int(total), 0, 0, (), "model.safetensors.index.json metadata.total_size")
    return None


def weight_bytes_from_dir(model_dir: str) -> Optional[int]:
    """Bytes of weights stored in a model directory's safetensors, or None."""
    found = read_weight_files(model_dir)
    return found.stored_bytes if found else None

