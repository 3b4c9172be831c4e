"""Matching losses shared by the distillation methods (docs/specification.md#dc-and-pcc, #sadm, #3ddp).

- :func:`multi_bandwidth_mmd`: the multi-bandwidth Gaussian MMD of M3D, used by SADM (L_beta, and L_alpha in the
  paper reading) and 3DDP.
- :func:`gradient_distance`: DC's layer-wise cosine distance between parameter gradients, used by DC, PCC and DD3D.
- :func:`sort_pointwise`: SADM's per-channel sort of point-wise features over the points.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ddbench.ops.sort import SORT_BACKENDS, argsort_descending, sort_backend, sort_descending  # noqa: F401

MMD_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)


def two_sample_squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(n, D) and (m, D) -> the (n + m, n + m) squared Euclidean distances between the rows of x stacked on y,
    clamped at 0, built from the blocks x x^T, x y^T and y y^T (docs/specification.md#multi-bandwidth-mmd).
    The values are those of one Gram matrix of the stacked rows; what differs is the backward pass: when ``x``
    needs no gradient (the real side), autograd computes the gradient of ``y`` alone, instead of a gradient for
    every stacked row of which the real rows are thrown away. For high-dimensional samples (SADM's sorted
    features: a million dimensions per cloud) that backward pass is one of an iteration's largest memory
    streams."""
    sq = torch.cat([(x * x).sum(1), (y * y).sum(1)])
    x_y = x @ y.t()
    gram = torch.cat([torch.cat([x @ x.t(), x_y], 1), torch.cat([x_y.t(), y @ y.t()], 1)])
    return (sq[:, None] + sq[None, :] - 2.0 * gram).clamp_min(0.0)


def multi_bandwidth_mmd(x: torch.Tensor, y: torch.Tensor, scales: Sequence[float] = MMD_SCALES) -> torch.Tensor:
    """Biased MMD^2 between the samples ``x`` (n, ...) and ``y`` (m, ...) with a sum of Gaussian kernels.

    Both sets are stacked; D holds their squared pairwise distances; the bandwidth h is the mean off-diagonal
    entry of D (detached); K = sum over s of exp(-D / (h s)); MMD^2 = mean K_xx - 2 mean K_xy + mean K_yy with the
    diagonals included. Trailing dimensions are flattened.
    """
    x, y = x.reshape(len(x), -1), y.reshape(len(y), -1)
    if len(x) == 0 or len(y) == 0:
        raise ValueError("MMD needs at least one sample on each side")
    return _mmd_from_distances(two_sample_squared_distances(x, y), len(x), scales)


def _mmd_from_distances(d: torch.Tensor, n: int, scales: Sequence[float]) -> torch.Tensor:
    """The biased multi-bandwidth MMD^2 of :func:`multi_bandwidth_mmd`, given the squared distances ``d`` of the
    stacked samples (the first ``n`` rows are x, the rest y)."""
    total = len(d)
    h = ((d.sum() - d.diagonal().sum()) / (total * (total - 1))).detach().clamp_min(1e-12)
    k = sum(torch.exp(-d / (h * s)) for s in scales)
    return k[:n, :n].mean() - 2 * k[:n, n:].mean() + k[n:, n:].mean()


def multi_bandwidth_mmd_shared(xs: Sequence[torch.Tensor], y: torch.Tensor,
                               scales: Sequence[float] = MMD_SCALES) -> list[torch.Tensor]:
    """``[multi_bandwidth_mmd(x, y) for x in xs]`` with one Gram matrix for all of them: the samples are stacked
    once and multiplied once, instead of stacking ``y`` again and recomputing its products for every ``x``. For
    high-dimensional samples (3DDP matches 4 partitions against the same synthetic clouds, 258k dimensions each)
    the matrix product and the stacking dominate the loss, and this does each once."""
    if len(y) == 0 or any(len(x) == 0 for x in xs):
        raise ValueError("MMD needs at least one sample on each side")
    flat = [x.reshape(len(x), -1) for x in xs]
    y = y.reshape(len(y), -1)
    dist = two_sample_squared_distances(torch.cat(flat), y)
    y_rows = torch.arange(len(dist) - len(y), len(dist), device=dist.device)
    out, lo = [], 0
    for x in flat:
        rows = torch.cat([torch.arange(lo, lo + len(x), device=dist.device), y_rows])
        out.append(_mmd_from_distances(dist[rows][:, rows], len(x), scales))
        lo += len(x)
    return out


def gradient_distance(real: Sequence[torch.Tensor], syn: Sequence[torch.Tensor], eps: float = 1e-6) -> torch.Tensor:
    """DC's layer-wise distance between two lists of parameter gradients.

    Per parameter tensor: reshape to rows = output channels (first dimension); sum over rows of
    1 - cos(real row, synthetic row), with ``eps`` added to the product of norms as in the reference code;
    1-D tensors (biases, normalisation affines) contribute 0; the result is the sum over tensors.
    """
    total = None
    for gr, gs in zip(real, syn, strict=True):
        if gs is None or gr is None or gs.dim() == 1:
            continue
        gr2, gs2 = gr.reshape(gr.shape[0], -1), gs.reshape(gs.shape[0], -1)
        cos = (gr2 * gs2).sum(-1) / (gr2.norm(dim=-1) * gs2.norm(dim=-1) + eps)
        term = (1.0 - cos).sum()
        total = term if total is None else total + term
    if total is None:
        raise ValueError("no parameter tensor with two or more dimensions to match")
    return total


def sort_pointwise(features: torch.Tensor) -> torch.Tensor:
    """(B, C, N) point-wise features -> every channel sorted over the points, descending (signed values).

    The result does not depend on the order of the points of a cloud; its first rank is the max-pooled feature.
    Gradients flow to the sorted values. On CPU the sort runs in numpy, an order of magnitude faster than
    torch.sort for (B, 1024, 1024) float32 here (benchmarks/bench_methods.py); the sorted values are the same:
    values only when no gradient is needed, otherwise an argsort whose indices gather the values in torch. The
    rows are sorted on as many threads as torch uses (:mod:`ddbench.ops.sort`).
    """
    if features.device.type != "cpu" or sort_backend() == "torch":
        return torch.sort(features, dim=2, descending=True).values
    threads = torch.get_num_threads()
    if not features.requires_grad:
        return torch.from_numpy(sort_descending(features.detach().numpy(), threads))
    order = argsort_descending(features.detach().numpy(), threads)
    return torch.gather(features, 2, torch.from_numpy(order))
