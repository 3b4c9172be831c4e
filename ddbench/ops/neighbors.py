"""Neighbourhoods in pure torch: k nearest neighbours, ball query, grouping.

All functions take (B, N, 3) coordinates (or (B, N, C) features for kNN in feature space) and work on chunks of
query points, so that the distance matrix held at once is at most ``chunk`` x N per cloud: memory stays bounded at
1024+ points. Indices are not differentiable; grouping with them is (gradients flow to the gathered points and
features, and relative positions keep the gradient of both the neighbours and the centres).
"""

from __future__ import annotations

import torch

from ddbench.errors import DataError

DEFAULT_CHUNK = 512


def _sq_dist(q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """(B, M, C), (B, N, C) -> (B, M, N) squared distances (no gradient needed: used for indices only)."""
    return (q.pow(2).sum(-1, keepdim=True) + r.pow(2).sum(-1).unsqueeze(1) - 2 * q @ r.transpose(1, 2)).clamp_min_(0)


@torch.no_grad()
def knn(query: torch.Tensor, ref: torch.Tensor, k: int, chunk: int = DEFAULT_CHUNK) -> torch.Tensor:
    """Indices (B, M, k) of the k nearest ``ref`` points of every ``query`` point, nearest first (ties: lower
    index first). ``k`` larger than the number of reference points is an error."""
    B, M, _ = query.shape
    N = ref.shape[1]
    if not 0 < k <= N:
        raise DataError(f"cannot take {k} nearest neighbours among {N} points")
    q, r = query.detach(), ref.detach()
    out = torch.empty(B, M, k, dtype=torch.long, device=query.device)
    for lo in range(0, M, chunk):
        d = _sq_dist(q[:, lo : lo + chunk], r)
        out[:, lo : lo + chunk] = d.topk(k, dim=-1, largest=False, sorted=True).indices
    return out


@torch.no_grad()
def ball_query(
    query: torch.Tensor, ref: torch.Tensor, radius: float, nsample: int, chunk: int = DEFAULT_CHUNK
) -> torch.Tensor:
    """Indices (B, M, nsample) of up to ``nsample`` ``ref`` points within ``radius`` of every query point.

    The semantics of the reference CUDA kernel: the first ``nsample`` points within the radius in index order;
    when fewer are found, the first one found is repeated. A query with no point in its ball (possible only when
    queries are not reference points) gets its nearest point.
    """
    B, M, _ = query.shape
    N = ref.shape[1]
    q, r = query.detach(), ref.detach()
    out = torch.empty(B, M, nsample, dtype=torch.long, device=query.device)
    arange = torch.arange(N, device=query.device)
    for lo in range(0, M, chunk):
        d = _sq_dist(q[:, lo : lo + chunk], r)
        inside = d <= radius * radius
        # index of every point inside the ball, N (a sentinel) outside; the smallest nsample are the first ones
        keyed = torch.where(inside, arange, torch.full_like(d, N, dtype=torch.long))
        k = min(nsample, N)
        first = keyed.topk(k, dim=-1, largest=False, sorted=True).values
        nearest = d.argmin(-1, keepdim=True)
        lead = torch.where(first[..., :1] < N, first[..., :1], nearest)
        first = torch.where(first < N, first, lead)
        if k < nsample:
            first = torch.cat([first, lead.expand(-1, -1, nsample - k)], dim=-1)
        out[:, lo : lo + chunk] = first
    return out


def group(values: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``values`` (B, N, C) gathered at ``idx`` (B, M, k) -> (B, M, k, C); differentiable w.r.t. ``values``."""
    B, M, k = idx.shape
    flat = idx.reshape(B, M * k, 1).expand(-1, -1, values.shape[-1])
    return torch.gather(values, 1, flat).reshape(B, M, k, values.shape[-1])


def relative_positions(points: torch.Tensor, centres: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Neighbour coordinates relative to their centre, (B, M, k, 3); differentiable in both."""
    return group(points, idx) - centres.unsqueeze(2)
