"""Farthest point sampling and gathering, batched, in pure torch."""

from __future__ import annotations

import torch

from ddbench.errors import DataError


def check_clouds(points: torch.Tensor, what: str = "points") -> None:
    """Raise :class:`DataError` unless ``points`` is a (B, N, 3) floating tensor."""
    if not isinstance(points, torch.Tensor):
        raise DataError(f"{what} must be a torch.Tensor of shape (B, N, 3), got {type(points).__name__}")
    if points.dim() != 3 or points.shape[-1] != 3:
        raise DataError(f"{what} must have shape (B, N, 3), got {tuple(points.shape)}")
    if not points.is_floating_point():
        raise DataError(f"{what} must be a floating tensor, got {points.dtype}")


@torch.no_grad()
def farthest_point_sample(
    points: torch.Tensor,
    n: int,
    start: str = "first",
    generator: torch.Generator | None = None,
    chunk: int = 512,
) -> torch.Tensor:
    """Indices (B, n) of ``n`` farthest-point samples of each cloud in ``points`` (B, N, 3).

    ``start="first"`` starts from point 0 (deterministic, as the reference CUDA kernel does);
    ``start="random"`` draws the first point with ``generator``. Clouds are processed ``chunk`` at a time so
    that memory stays at O(chunk * N). The selection itself is not differentiable (indices), but gathering with
    the returned indices is.
    """
    check_clouds(points)
    B, N, _ = points.shape
    if not 0 < n <= N:
        raise DataError(f"cannot sample {n} points by FPS from clouds of {N} points")
    if start not in ("first", "random"):
        raise ValueError(f"start must be 'first' or 'random', got {start!r}")
    out = torch.empty(B, n, dtype=torch.long, device=points.device)
    for lo in range(0, B, chunk):
        pts = points[lo : lo + chunk].detach()
        b = pts.shape[0]
        rows = torch.arange(b, device=pts.device)
        if start == "first":
            farthest = torch.zeros(b, dtype=torch.long, device=pts.device)
        else:
            farthest = torch.randint(0, N, (b,), generator=generator, device="cpu").to(pts.device)
        dist = torch.full((b, N), float("inf"), dtype=pts.dtype, device=pts.device)
        idx = out[lo : lo + chunk]
        for i in range(n):
            idx[:, i] = farthest
            centre = pts[rows, farthest].unsqueeze(1)
            dist = torch.minimum(dist, ((pts - centre) ** 2).sum(-1))
            farthest = dist.argmax(-1)
    return out


def gather_points(points: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``points`` (B, N, C) gathered at ``idx`` (B, ...) -> (B, ..., C); differentiable w.r.t. ``points``."""
    B = points.shape[0]
    flat = idx.reshape(B, -1)
    gathered = torch.gather(points, 1, flat.unsqueeze(-1).expand(-1, -1, points.shape[-1]))
    return gathered.reshape(*idx.shape, points.shape[-1])
