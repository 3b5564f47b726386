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


def read_safetensors_header(path: str) -> Dict[str, Any]:
    """The JSON header of one safetensors file, without reading its tensors.

    Layout: 8-byte little-endian header length, then that many bytes of JSON.
    """
    with open(path, "rb") as handle:
        raw = handle.read(8)
        if len(raw) != 8:
            raise ValueError(f"{path} is not a safetensors file: shorter than 8 bytes")
        (length,) = struct.unpack("<Q", raw)
        if length <= 0 or length > MAX_SAFETENSORS_HEADER:
            raise ValueError(f"{path} is not a safetensors file: header length {length}")
        header = handle.read(length)
    if len(header) != length:
        raise ValueError(f"{path} is truncated: header needs {length} bytes, got {len(header)}")
    try:
        parsed = json.loads(header.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path} has an unreadable safetensors header: {exc}") from exc
    if not isinstance(parsed, dict):
        raise ValueError(f"{path} has a safetensors header that is not a JSON object")
    return parsed


def _tensor_bytes(name: str, info: Dict[str, Any], path: str) -> Tuple[str, int, int]:
    """(dtype, elements, bytes) of one header entry."""
    dtype = str(info.get("dtype", ""))
    shape = info.get("shape") or []
    elements = 1
    for dim in shape:
        elements *= int(dim)
    offsets = info.get("data_offsets")
    if isinstance(offsets, (list, tuple)) and len(offsets) == 2:
        size = int(offsets[1]) - int(offsets[0])
    elif dtype in SAFETENSORS_FLOAT_BYTES:
        size = elements * SAFETENSORS_FLOAT_BYTES[dtype]
    elif dtype in SAFETENSORS_OTHER_BYTES:
        size = int(math.ceil(elements * SAFETENSORS_OTHER_BYTES[dtype]))
    else:
        raise ValueError(f"{path}: tensor {name} has unknown dtype {dtype!r} and no data_offsets")
    if size < 0:
        raise ValueError(f"{path}: tensor {name} has negative data_offsets")
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
        with open(index_path, encoding="utf-8") as handle:
            index = json.load(handle)
        weight_map = (index or {}).get("weight_map") or {}
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
                if name == "__metadata__" or not isinstance(info, dict):
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

