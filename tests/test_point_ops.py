"""Point operations against brute-force references, chunking, differentiability and the optional FPS backend."""

from __future__ import annotations

import pytest
import torch

from ddbench.errors import ConfigError, DataError
from ddbench.ops import backends
from ddbench.ops.neighbors import ball_query, group, knn, relative_positions
from ddbench.ops.sampling import farthest_point_sample


def clouds(b=2, n=300, seed=0):
    return torch.rand(b, n, 3, generator=torch.Generator().manual_seed(seed))


def test_knn_matches_a_full_sort():
    ref, query = clouds(), clouds(n=50, seed=1)
    idx = knn(query, ref, 7)
    d = torch.cdist(query, ref)
    expected = d.argsort(dim=-1, stable=True)[..., :7]
    assert torch.equal(torch.gather(d, 2, idx), torch.gather(d, 2, expected))  # same distances, in order
    assert torch.equal(idx, knn(query, ref, 7, chunk=3))  # chunking changes nothing


def test_knn_of_a_cloud_with_itself_starts_with_the_point():
    pts = clouds()
    assert torch.equal(knn(pts, pts, 1)[..., 0], torch.arange(300).expand(2, -1))
    with pytest.raises(DataError, match="cannot take 301"):
        knn(pts, pts, 301)


def test_ball_query_radius_order_and_padding():
    ref = clouds(n=400, seed=2)
    query = ref[:, :40]
    radius, nsample = 0.15, 8
    idx = ball_query(query, ref, radius, nsample)
    assert idx.shape == (2, 40, nsample)
    d = torch.cdist(query, ref)
    for b in range(2):
        for m in range(40):
            inside = torch.nonzero(d[b, m] <= radius).flatten()
            expected = inside[:nsample].tolist()
            expected += [expected[0]] * (nsample - len(expected))  # padded with the first found
            assert idx[b, m].tolist() == expected
    assert torch.equal(idx, ball_query(query, ref, radius, nsample, chunk=7))


def test_ball_query_falls_back_to_the_nearest_point():
    ref = torch.zeros(1, 5, 3)
    far = torch.full((1, 1, 3), 10.0)
    assert ball_query(far, ref, 0.1, 3).tolist() == [[[0, 0, 0]]]


def test_grouping_is_differentiable_in_points_and_centres():
    pts = clouds(n=64).requires_grad_(True)
    centres = pts[:, :8].detach().clone().requires_grad_(True)
    idx = knn(centres, pts, 5)
    rel = relative_positions(pts, centres, idx)
    (rel**2).sum().backward()
    assert pts.grad.abs().sum() > 0 and centres.grad.abs().sum() > 0
    feats = torch.randn(2, 64, 4, requires_grad=True)
    group(feats, idx).sum().backward()
    assert int((feats.grad != 0).any(-1).sum()) > 0


def test_memory_stays_bounded_with_chunks():
    """At 4096 points the chunked kNN never holds more than chunk x N distances at once."""
    pts = clouds(b=1, n=4096)
    idx = knn(pts, pts, 16, chunk=256)
    assert idx.shape == (1, 4096, 16)


def test_fps_backend_selection(monkeypatch):
    monkeypatch.setenv("DDBENCH_FPS_BACKEND", "torch")
    assert backends.fps_backend() == "torch" and backends.backend_record()["fps"] == "torch"
    monkeypatch.setenv("DDBENCH_FPS_BACKEND", "magic")
    with pytest.raises(ConfigError, match="DDBENCH_FPS_BACKEND"):
        backends.fps_backend()


def test_fpsample_backend_agrees_with_torch(monkeypatch):
    pytest.importorskip("fpsample")
    monkeypatch.setenv("DDBENCH_FPS_BACKEND", "fpsample")
    for seed in range(3):
        pts = clouds(b=4, n=1024, seed=seed)
        assert torch.equal(backends.farthest_point_sample(pts, 256), farthest_point_sample(pts, 256))
    assert backends.backend_record()["fps"] == "fpsample"


def test_missing_fpsample_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(backends, "_fpsample", lambda: None)
    monkeypatch.setenv("DDBENCH_FPS_BACKEND", "fpsample")
    with pytest.raises(ConfigError, match="pip install fpsample"):
        backends.fps_backend()
    monkeypatch.setenv("DDBENCH_FPS_BACKEND", "auto")
    assert backends.fps_backend() == "torch"
