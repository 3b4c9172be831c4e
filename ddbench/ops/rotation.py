"""Rotation matrices for (B, N, 3) clouds; differentiable where angles are parameters."""

from __future__ import annotations

import math

import torch


def euler_to_matrix(angles: torch.Tensor) -> torch.Tensor:
    """(B, 3) angles (theta_x, theta_y, theta_z) -> (B, 3, 3) matrices R = Rx(tx) @ Ry(ty) @ Rz(tz).

    Differentiable with respect to ``angles`` (SADM learns them).
    """
    tx, ty, tz = angles.unbind(-1)
    one, zero = torch.ones_like(tx), torch.zeros_like(tx)
    cx, sx, cy, sy, cz, sz = tx.cos(), tx.sin(), ty.cos(), ty.sin(), tz.cos(), tz.sin()
    rx = torch.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).view(-1, 3, 3)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).view(-1, 3, 3)
    rz = torch.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).view(-1, 3, 3)
    return rx @ ry @ rz


def rotation_z(theta: torch.Tensor) -> torch.Tensor:
    """(B,) angles -> (B, 3, 3) rotations about the z axis."""
    zeros = torch.zeros_like(theta)
    return euler_to_matrix(torch.stack([zeros, zeros, theta], -1))


def random_rotation_matrices(
    batch: int, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """(B, 3, 3) rotations drawn uniformly from SO(3) (normalised Gaussian quaternions)."""
    q = torch.randn(batch, 4, generator=generator, dtype=torch.float64)
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    m = torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
            2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
            2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
        ],
        -1,
    ).view(batch, 3, 3)
    return m.to(dtype)


def wrap_angles(angles: torch.Tensor) -> torch.Tensor:
    """Wrap angles to [-pi, pi)."""
    return torch.remainder(angles + math.pi, 2 * math.pi) - math.pi


def apply_rotation(points: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """Rotate (B, N, 3) clouds by (B, 3, 3) matrices: p -> R p for every point."""
    return points @ rotations.transpose(1, 2)
