"""Point-cloud transforms on (B, N, 3) tensors.

Functions do the work; the :class:`Transform` components wrap them with a pydantic Config so that datasets,
methods and protocols can name them (``register_transforms`` hook). Random transforms take a
``torch.Generator`` so that every augmentation is reproducible from a recorded seed.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field

from ddbench.config import ComponentConfig
from ddbench.ops.rotation import apply_rotation, euler_to_matrix, random_rotation_matrices, rotation_z
from ddbench.ops.sampling import check_clouds, farthest_point_sample, gather_points
from ddbench.registry import Component


def normalize_unit_sphere(points: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Centre each cloud on its centroid and scale it so that its farthest point has radius 1."""
    check_clouds(points)
    centred = points - points.mean(dim=1, keepdim=True)
    radius = centred.norm(dim=-1).amax(dim=1, keepdim=True).unsqueeze(-1)
    return centred / radius.clamp_min(eps)


def fps_subsample(points: torch.Tensor, n: int, start: str = "first", generator=None) -> torch.Tensor:
    """Reduce each cloud to ``n`` points by farthest point sampling (identity when it already has ``n``)."""
    if points.shape[1] == n:
        return points
    return gather_points(points, farthest_point_sample(points, n, start=start, generator=generator))


def random_rotate_z(points: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Rotate each cloud about the z axis by an angle drawn uniformly from [0, 2 pi)."""
    check_clouds(points)
    theta = torch.rand(points.shape[0], generator=generator) * (2 * torch.pi)
    return apply_rotation(points, rotation_z(theta).to(points))


def random_rotate_so3(points: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Rotate each cloud by a rotation drawn uniformly from SO(3)."""
    check_clouds(points)
    return apply_rotation(points, random_rotation_matrices(points.shape[0], generator).to(points))


def jitter(
    points: torch.Tensor, sigma: float = 0.01, clip: float = 0.05, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Add Gaussian noise N(0, sigma) clipped to [-clip, clip] to every coordinate."""
    check_clouds(points)
    noise = (torch.randn(points.shape, generator=generator) * sigma).clamp(-clip, clip)
    return points + noise.to(points)


def random_scale(
    points: torch.Tensor,
    low: float = 0.8,
    high: float = 1.25,
    anisotropic: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Scale each cloud by a factor drawn from U[low, high] (one per cloud, or one per axis)."""
    check_clouds(points)
    shape = (points.shape[0], 1, 3 if anisotropic else 1)
    factor = low + (high - low) * torch.rand(shape, generator=generator)
    return points * factor.to(points)


def perturb_rotation(
    points: torch.Tensor, sigma: float = 0.06, clip: float = 0.18, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Small random rotation: per-axis angles N(0, sigma) clipped to [-clip, clip] radians."""
    check_clouds(points)
    angles = (torch.randn(points.shape[0], 3, generator=generator) * sigma).clamp(-clip, clip)
    return apply_rotation(points, euler_to_matrix(angles).to(points))


class Transform(Component):
    """Base class of registrable transforms: ``transform(points, generator) -> points``."""

    kind: ClassVar[str] = "transform"

    def __init__(self, config: ComponentConfig | None = None):
        self.config = config if config is not None else self.Config()

    def __call__(self, points: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError


class _NoConfig(ComponentConfig):
    pass


class NormalizeTransform(Transform):
    """Centre on the centroid and scale to the unit sphere."""

    name = "normalize"
    Config = _NoConfig

    def __call__(self, points, generator=None):
        return normalize_unit_sphere(points)


class FPSConfig(ComponentConfig):
    points: int = Field(1024, gt=0)
    start: str = Field("first", pattern="^(first|random)$")


class FPSTransform(Transform):
    """Reduce every cloud to `points` points by farthest point sampling."""

    name = "fps"
    Config = FPSConfig

    def __call__(self, points, generator=None):
        return fps_subsample(points, self.config.points, self.config.start, generator)


class RotateZTransform(Transform):
    """Random rotation about the z axis."""

    name = "rotate_z"
    Config = _NoConfig

    def __call__(self, points, generator=None):
        return random_rotate_z(points, generator)


class RotateSO3Transform(Transform):
    """Random rotation drawn uniformly from SO(3)."""

    name = "rotate_so3"
    Config = _NoConfig

    def __call__(self, points, generator=None):
        return random_rotate_so3(points, generator)


class JitterConfig(ComponentConfig):
    sigma: float = Field(0.01, ge=0)
    clip: float = Field(0.05, ge=0)


class JitterTransform(Transform):
    """Gaussian jitter of every coordinate, clipped."""

    name = "jitter"
    Config = JitterConfig

    def __call__(self, points, generator=None):
        return jitter(points, self.config.sigma, self.config.clip, generator)


class ScaleConfig(ComponentConfig):
    low: float = Field(0.8, gt=0)
    high: float = Field(1.25, gt=0)
    anisotropic: bool = False


class ScaleTransform(Transform):
    """Random scaling by a factor in [low, high]."""

    name = "scale"
    Config = ScaleConfig

    def __call__(self, points, generator=None):
        return random_scale(points, self.config.low, self.config.high, self.config.anisotropic, generator)


class PerturbRotationConfig(ComponentConfig):
    sigma: float = Field(0.06, ge=0)
    clip: float = Field(0.18, ge=0)


class PerturbRotationTransform(Transform):
    """Small random rotation about every axis (PointNet's rotation perturbation)."""

    name = "perturb_rotation"
    Config = PerturbRotationConfig

    def __call__(self, points, generator=None):
        return perturb_rotation(points, self.config.sigma, self.config.clip, generator)


class CanonicalConfig(ComponentConfig):
    sign: str = Field("sin", pattern="^(sin|none)$", description="per-axis sign fix: sin (DD3D's code) or none")


class PCACanonicalTransform(Transform):
    """PCA canonicalisation (DD3D's rotator) with the released code's parameter-free sign fix."""

    name = "pca_canonicalise"
    Config = CanonicalConfig

    def __call__(self, points, generator=None):
        from ddbench.ops.canonical import pca_canonicalise

        return pca_canonicalise(points, self.config.sign)


class Compose:
    """Apply transforms in order with one generator."""

    def __init__(self, transforms: list[Transform]):
        self.transforms = list(transforms)

    def __call__(self, points: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        for t in self.transforms:
            points = t(points, generator)
        return points


BUILTIN_TRANSFORMS = (
    NormalizeTransform,
    FPSTransform,
    RotateZTransform,
    RotateSO3Transform,
    JitterTransform,
    ScaleTransform,
    PerturbRotationTransform,
    PCACanonicalTransform,
)
