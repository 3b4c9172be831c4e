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

Where the frame is computed (``frame``):

- ``pca``: every input cloud is centred and projected on its own PCA frame, then sign-fixed
  (:func:`pca_canonicalise`).
- ``given``: the input is taken as already in its frame and only the sign is fixed (:func:`sign_fix`; no
  centring, no projection). This is how DD3D's released code does it (revision a500ab4): the real clouds are
  projected on their PCA frame once, when the data is loaded (gm_inr.py:152-157, ``torch.mm(points, vec)`` with
  the eigenvectors stored in the prepared files), and every network, for distillation (gm_inr.py:226-227) and for
  evaluation (utils.py:318-319), is wrapped in ``InvariantWrapper`` (CINR.py:228-255), which applies
  ``points * torch.sign(mean over points of sin(w0 * points))`` with w0 = ``--w0_sign`` = 1 (gm_inr.py:336) and
  nothing else, to real and synthetic clouds alike: synthetic clouds are never PCA-projected. In ddbench the data
  side is the dataset's ``canonical = pca`` setting (PCA frame and the same sign fix, so the wrapper leaves real
  clouds unchanged); the network side is ``Canonicaliser("sin", frame="given")`` around the network
  (:class:`CanonicalisedNet`). Two details differ from ``torch.sign``: a statistic of exactly 0 gives +1 here
  (``torch.sign`` gives 0, which would zero the axis), and ddbench's PCA centres the cloud first (the code
  projects clouds that its preprocessing has already centred).
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


def sign_fix(points: torch.Tensor, w0: float = 1.0) -> torch.Tensor:
    """DD3D's released sign fix alone (``InvariantWrapper``, CINR.py:252-253): each axis of each cloud times the
    sign of the mean over points of sin(w0 x_d); no centring, no projection (the input is already in its frame)."""
    return points * sin_sign(points.detach(), w0)


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
    """Canonicalisation as a module (for wrapping a backbone): sign ``sin``, ``none`` or ``learned``; ``frame``
    ``pca`` (each input's own PCA frame) or ``given`` (the input is already in its frame: only the sign is fixed,
    DD3D's released ``InvariantWrapper``); ``w0`` is the frequency of the ``sin`` statistic."""

    def __init__(self, sign: str = "sin", frame: str = "pca", w0: float = 1.0):
        super().__init__()
        if sign not in ("sin", "none", "learned"):
            raise ValueError(f"unknown sign fix {sign!r} (use sin, none or learned)")
        if frame not in ("pca", "given"):
            raise ValueError(f"unknown frame {frame!r} (use pca or given)")
        self.sign, self.frame, self.w0 = sign, frame, w0
        self.learned = LearnedSignFix() if sign == "learned" else None

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        if self.frame == "pca":
            centred, vecs = pca_frame(points)
            points = centred @ vecs
        if self.learned is not None:
            return self.learned(points)
        return points if self.sign == "none" else sign_fix(points, self.w0)


class CanonicalisedNet(nn.Module):
    """A network behind a :class:`Canonicaliser`: ``net(canonicaliser(points))``; its parameters are the
    network's and, for the learned sign fix, the canonicaliser's. ``Canonicaliser("sin", frame="given")`` makes
    it DD3D's released ``InvariantWrapper`` (CINR.py:228-255)."""

    def __init__(self, net: nn.Module, canonicaliser: Canonicaliser):
        super().__init__()
        self.canonicaliser = canonicaliser
        self.net = net

    def forward(self, points: torch.Tensor):
        return self.net(self.canonicaliser(points))
