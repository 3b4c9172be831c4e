"""What a result needs to be reproducible: library versions, device, threads, allocator, peak memory."""

from __future__ import annotations

import os
import platform
import resource
import sys
from importlib import metadata

import torch


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("ddbench", "torch", "numpy", "pandas", "pydantic", "pluggy", "h5py", "scipy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu. ``cuda`` without a GPU is an error with advice."""
    from ddbench.errors import ConfigError

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda was requested but torch sees no CUDA device; use --device cpu or auto")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu or cuda[:N]")
    return torch.device(device)


#: the environment variables that choose this process's allocator (recorded in every cell)
ALLOCATOR_VARIABLES = ("LD_PRELOAD", "GLIBC_TUNABLES")


def allocator() -> str:
    """The memory allocator this process runs with: a preloaded one, glibc with raised mmap/trim thresholds
    (``glibc-tuned``, as ``ddbench`` arranges it without tcmalloc), or the system's defaults."""
    preload = os.environ.get("LD_PRELOAD", "")
    for name in ("tcmalloc", "jemalloc", "mimalloc"):
        if name in preload:
            return name
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.mmap_threshold" in tunables or "glibc.malloc.trim_threshold" in tunables:
        return "glibc-tuned"
    return "system"


def environment_record(device: torch.device) -> dict:
    rec = {
        "versions": library_versions(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or "",
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "allocator": allocator(),
        "allocator_arranged": bool(os.environ.get("DDBENCH_ALLOCATOR_ARRANGED")),
        "allocator_settings": {k: os.environ[k] for k in ALLOCATOR_VARIABLES if os.environ.get(k)},
        "device": str(device),
        "argv": sys.argv[1:],
        "point_ops": _point_ops(),
    }
    if device.type == "cuda":
        rec["device_name"] = torch.cuda.get_device_name(device)
        rec["cuda"] = torch.version.cuda
    else:
        rec["device_name"] = _cpu_name()
    return rec


def _point_ops() -> dict:
    from ddbench.ops.backends import backend_record

    return backend_record()


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


class PeakMemory:
    """Peak resident memory (and CUDA memory) during a block of work.

    On Linux the kernel's high-water mark (VmHWM) is reset at the start by writing 5 to
    /proc/self/clear_refs, so the reading is the peak of this block alone. Elsewhere the process-lifetime
    maximum (getrusage) is reported and flagged as such.
    """

    def __init__(self, device: torch.device | None = None):
        self.device = device
        self.scope = "block"
        self.peak_rss_bytes: int | None = None
        self.peak_cuda_bytes: int | None = None

    def __enter__(self) -> "PeakMemory":
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
        except OSError:
            self.scope = "process"
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc) -> None:
        self.peak_rss_bytes = _vm_hwm() if self.scope == "block" else None
        if self.peak_rss_bytes is None:
            self.scope = "process"
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            self.peak_rss_bytes = rss if sys.platform == "darwin" else rss * 1024
        if self.device is not None and self.device.type == "cuda":
            self.peak_cuda_bytes = int(torch.cuda.max_memory_allocated(self.device))

    def record(self) -> dict:
        return {
            "peak_rss_bytes": self.peak_rss_bytes,
            "peak_rss_scope": self.scope,
            "peak_cuda_bytes": self.peak_cuda_bytes,
        }


def _vm_hwm() -> int | None:
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
