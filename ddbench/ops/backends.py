"""Optional faster backends for point operations, with the choice recorded in every result.

FPS: ``torch`` (the pure-torch reference in ``ddbench.ops.sampling``) or ``fpsample`` (the Rust/C++ ``fpsample``
package, when installed; CPU only). ``DDBENCH_FPS_BACKEND`` = ``auto`` (default: fpsample when importable),
``torch`` or ``fpsample``. Backbones use this dispatcher at run time. Data preparation always uses the torch
reference, so that prepared datasets do not depend on what is installed.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from ddbench.errors import ConfigError
from ddbench.ops import sampling
from ddbench.ops.sort import sort_backend

FPS_BACKENDS = ("auto", "torch", "fpsample")


def _fpsample():
    try:
        import fpsample

        return fpsample
    except ImportError:
        return None


def fps_backend() -> str:
    """The FPS backend in use: ``torch`` or ``fpsample``."""
    wanted = os.environ.get("DDBENCH_FPS_BACKEND", "auto")
    if wanted not in FPS_BACKENDS:
        raise ConfigError(f"DDBENCH_FPS_BACKEND={wanted!r}; use one of {', '.join(FPS_BACKENDS)}")
    if wanted == "torch":
        return "torch"
    available = _fpsample() is not None
    if wanted == "fpsample" and not available:
        raise ConfigError("DDBENCH_FPS_BACKEND=fpsample but the fpsample package is not installed: pip install fpsample")
    return "fpsample" if available else "torch"


def farthest_point_sample(points: torch.Tensor, n: int, start: str = "first", generator=None) -> torch.Tensor:
    """Indices (B, n) by farthest point sampling through the configured backend (see the module doc)."""
    if start == "first" and points.device.type == "cpu" and fps_backend() == "fpsample":
        sampling.check_clouds(points)
        if not 0 < n <= points.shape[1]:
            return sampling.farthest_point_sample(points, n)  # raises the usual error
        lib = _fpsample()
        clouds = points.detach().numpy()
        idx = np.stack([lib.fps_sampling(c, n, start_idx=0) for c in clouds]).astype(np.int64)
        return torch.from_numpy(idx)
    return sampling.farthest_point_sample(points, n, start=start, generator=generator)


def backend_record() -> dict:
    """The point-operation backends in use (FPS, and the CPU sort of ``ddbench.ops.sort``), for result records."""
    lib = _fpsample()
    return {"fps": fps_backend(), "fpsample_version": getattr(lib, "__version__", None) if lib else None,
            "sort_cpu": sort_backend()}
