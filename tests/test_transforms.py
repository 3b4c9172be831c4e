"""Transforms and point operations in pure torch."""

from __future__ import annotations

import math

import pytest
import torch

from ddbench.data.transforms import (
    Compose,
    JitterTransform,
    NormalizeTransform,
    fps_subsample,
    jitter,
    normalize_unit_sphere,
    perturb_rotation,
    random_rotate_so3,
    random_rotate_z,
    random_scale,
)
from ddbench.errors import DataError
from ddbench.ops.rotation import euler_to_matrix, random_rotation_matrices, wrap_angles
from ddbench.ops.sampling import farthest_point_sample, gather_points


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_normalize_unit_sphere():
    pts = torch.randn(4, 100, 3, generator=gen()) * 3 + 7
    out = normalize_unit_sphere(pts)
    assert torch.allclose(out.mean(1), torch.zeros(4, 3), atol=1e-5)
    assert torch.allclose(out.norm(dim=-1).amax(1), torch.ones(4), atol=1e-6)


def test_transforms_reject_wrong_shapes():
    with pytest.raises(DataError, match=r"\(B, N, 3\)"):
        normalize_unit_sphere(torch.zeros(10, 3))
    with pytest.raises(DataError, match=r"\(B, N, 3\)"):
        farthest_point_sample(torch.zeros(2, 10, 2), 4)
    with pytest.raises(DataError, match="cannot sample 20"):
        farthest_point_sample(torch.zeros(1, 10, 3), 20)


def brute_force_fps(points: torch.Tensor, n: int) -> list[int]:
    chosen = [0]
    for _ in range(n - 1):
        d = torch.stack([((points - points[c]) ** 2).sum(-1) for c in chosen]).amin(0)
        chosen.append(int(d.argmax()))
    return chosen


def test_fps_matches_brute_force_and_is_deterministic():
    pts = torch.rand(3, 200, 3, generator=gen(1))
    idx = farthest_point_sample(pts, 16)
    for b in range(3):
        assert idx[b].tolist() == brute_force_fps(pts[b], 16)
    assert torch.equal(idx, farthest_point_sample(pts, 16))
    assert torch.equal(idx, farthest_point_sample(pts, 16, chunk=1))  # chunking changes nothing


def test_fps_spacing_beats_random_subset():
    pts = torch.rand(1, 2000, 3, generator=gen(2))
    fps = gather_points(pts, farthest_point_sample(pts, 64))[0]
    rnd = pts[0, torch.randperm(2000, generator=gen(3))[:64]]

    def min_gap(p):
        d = torch.cdist(p, p) + torch.eye(len(p)) * 10
        return float(d.min())

    assert min_gap(fps) > 2 * min_gap(rnd)


def test_fps_random_start_uses_generator():
    pts = torch.rand(2, 50, 3, generator=gen(4))
    a = farthest_point_sample(pts, 5, start="random", generator=gen(9))
    b = farthest_point_sample(pts, 5, start="random", generator=gen(9))
    assert torch.equal(a, b)


def test_gather_is_differentiable():
    pts = torch.rand(2, 30, 3, generator=gen(5), requires_grad=True)
    idx = farthest_point_sample(pts, 8)
    gather_points(pts, idx).sum().backward()
    assert pts.grad is not None and int((pts.grad != 0).any(-1).sum()) == 16


def test_fps_subsample_identity_when_sizes_match():
    pts = torch.rand(2, 10, 3)
    assert fps_subsample(pts, 10) is pts
    assert fps_subsample(pts, 4).shape == (2, 4, 3)


def test_rotations_are_proper_and_preserve_norms():
    r = random_rotation_matrices(50, gen(6))
    eye = torch.eye(3).expand(50, 3, 3)
    assert torch.allclose(r @ r.transpose(1, 2), eye, atol=1e-5)
    assert torch.allclose(torch.linalg.det(r), torch.ones(50), atol=1e-5)
    pts = torch.randn(50, 20, 3, generator=gen(7))
    out = random_rotate_so3(pts, gen(8))
    assert torch.allclose(out.norm(dim=-1), pts.norm(dim=-1), atol=1e-5)


def test_so3_rotations_cover_the_sphere():
    """Uniform rotations send a fixed vector to a uniform direction: mean near 0, |z| mean near 1/2."""
    v = random_rotation_matrices(4000, gen(10)) @ torch.tensor([0.0, 0.0, 1.0])
    assert v.mean(0).abs().max() < 0.05
    assert abs(float(v[:, 2].abs().mean()) - 0.5) < 0.03


def test_rotate_z_keeps_height():
    pts = torch.randn(5, 40, 3, generator=gen(11))
    out = random_rotate_z(pts, gen(12))
    assert torch.allclose(out[..., 2], pts[..., 2], atol=1e-6)
    assert not torch.allclose(out[..., 0], pts[..., 0])


def test_euler_composition_and_gradient():
    angles = torch.tensor([[0.3, -0.2, 1.1]], requires_grad=True)
    r = euler_to_matrix(angles)[0]
    rx = euler_to_matrix(torch.tensor([[0.3, 0.0, 0.0]]))[0]
    ry = euler_to_matrix(torch.tensor([[0.0, -0.2, 0.0]]))[0]
    rz = euler_to_matrix(torch.tensor([[0.0, 0.0, 1.1]]))[0]
    assert torch.allclose(r, rx @ ry @ rz, atol=1e-6)
    assert torch.allclose(rz @ torch.tensor([1.0, 0, 0]), torch.tensor([math.cos(1.1), math.sin(1.1), 0]), atol=1e-6)
    r.sum().backward()
    assert angles.grad is not None and torch.isfinite(angles.grad).all() and angles.grad.abs().sum() > 0


def test_wrap_angles():
    w = wrap_angles(torch.tensor([0.0, math.pi, -math.pi, 3 * math.pi + 0.1, -4.0]))
    assert torch.all(w >= -math.pi) and torch.all(w < math.pi)
    assert torch.allclose(torch.cos(w), torch.cos(torch.tensor([0.0, math.pi, -math.pi, 3 * math.pi + 0.1, -4.0])))


def test_jitter_is_clipped_and_seeded():
    pts = torch.zeros(4, 500, 3)
    out = jitter(pts, sigma=0.5, clip=0.05, generator=gen(13))
    assert out.abs().max() <= 0.05 + 1e-7 and out.abs().max() > 0.04
    assert torch.equal(out, jitter(pts, 0.5, 0.05, gen(13)))


def test_scale_range_isotropic_and_anisotropic():
    pts = torch.ones(200, 1, 3)
    iso = random_scale(pts, 0.8, 1.25, generator=gen(14))
    assert iso.min() >= 0.8 and iso.max() <= 1.25
    assert torch.allclose(iso[..., 0], iso[..., 1])
    aniso = random_scale(pts, 0.8, 1.25, anisotropic=True, generator=gen(15))
    assert not torch.allclose(aniso[..., 0], aniso[..., 1])


def test_perturb_rotation_is_small():
    pts = torch.randn(100, 30, 3, generator=gen(16))
    out = perturb_rotation(pts, 0.06, 0.18, gen(17))
    # rotation by at most ~0.18 rad per axis moves a unit vector by well under 0.5
    moved = (out - pts).norm(dim=-1) / pts.norm(dim=-1)
    assert moved.max() < 0.5 and moved.mean() > 0.01


def test_compose_and_transform_components():
    pts = torch.randn(2, 50, 3, generator=gen(18)) * 4
    t = Compose([JitterTransform(JitterTransform.Config(sigma=0.0)), NormalizeTransform()])
    out = t(pts, gen(19))
    assert torch.allclose(out.norm(dim=-1).amax(1), torch.ones(2), atol=1e-5)
