"""PCA canonicalisation of point clouds (DD3D's rotator, docs/specification.md#dd3d-rotator).

A cloud is centred and projected on the eigenvectors of its covariance (largest variance first), which removes
any rotation up to the sign of each axis. The sign is then fixed per axis:

- ``sin`` (DD3D's released code, parameter-free): s_d = sign(mean over points of sin(w0 x_d)), w0 = 1. Because
  sin is odd, flipping an axis flips s_d, so s_d x_d does not depend on the eigenvector's sign.
- ``learned`` (the paper's description, a learned SIREN sign encoder): s_d = tanh(k * mean over points of g(x_d)),
  with g(x) = f(x) - f(-x) for a small SIREN f, so g is odd and the same argument holds; its parameters train with
  the network that uses it (:class:`LearnedSignFix`). ddbench's reading: the paper does not specify the encoder's
  size or training beyond this, so it is a switch, not the default.
- ``none``: eigenvector signs as the solver returns them (not rotation invariant; for ablations).

Degenerate clouds (repeated eigenvalues) have no unique frame; canonicalisation is then only as stable as the
eigen solver. Everything is differentiable except the choice of the sign.
"""

from __future__ import annotations

import torch
from torch import nn


def pca_frame(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(centred points (B, N, 3), eigenvectors (B, 3, 3) as columns, largest variance first)."""
    centred = points - points.mean(dim=1, keepdim=True)
    cov = centred.transpose(1, 2) @ centred / points.shape[1]
    _, vecs = torch.linalg.eigh(cov.double())  # ascending eigenvalues
    return centred, vecs.flip(-1).to(points.dtype)


def sin_sign(projected: torch.Tensor, w0: float = 1.0) -> torch.Tensor:
    """(B, N, 3) -> (B, 1, 3) signs, +1 where the statistic is exactly 0."""
    stat = torch.sin(w0 * projected).mean(dim=1, keepdim=True)
    return torch.where(stat >= 0, torch.ones_like(stat), -torch.ones_like(stat))


def pca_canonicalise(points: torch.Tensor, sign: str = "sin", w0: float = 1.0) -> torch.Tensor:
    """Canonical form (B, N, 3) of every cloud: PCA frame, then the per-axis sign fix ``sign`` (sin or none)."""
    centred, vecs = pca_frame(points)
    projected = centred @ vecs
    if sign == "none":
        return projected
    if sign != "sin":
        raise ValueError(f"unknown sign fix {sign!r} for a parameter-free canonicalisation (use sin or none)")
    return projected * sin_sign(projected.detach(), w0)


class LearnedSignFix(nn.Module):
    """The learned sign encoder: a small odd SIREN statistic per axis, soft sign through tanh."""

    def __init__(self, hidden: int = 16, w0: float = 1.0, sharpness: float = 10.0):
        super().__init__()
        self.first = nn.Linear(1, hidden)
        self.out = nn.Linear(hidden, 1, bias=False)
        self.w0, self.sharpness = w0, sharpness

    def _f(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.sin(self.w0 * self.first(x.unsqueeze(-1)))).squeeze(-1)

    def forward(self, projected: torch.Tensor) -> torch.Tensor:
        odd = self._f(projected) - self._f(-projected)  # (B, N, 3), odd in each coordinate
        return projected * torch.tanh(self.sharpness * odd.mean(dim=1, keepdim=True))


class Canonicaliser(nn.Module):
    """PCA canonicalisation as a module (for wrapping a backbone): sign ``sin``, ``none`` or ``learned``."""

    def __init__(self, sign: str = "sin"):
        super().__init__()
        self.sign = sign
        self.learned = LearnedSignFix() if sign == "learned" else None

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        if self.learned is None:
            return pca_canonicalise(points, self.sign)
        centred, vecs = pca_frame(points)
        return self.learned(centred @ vecs)
