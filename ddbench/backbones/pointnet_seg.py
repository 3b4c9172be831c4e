"""Part-segmentation backbones: the interface, and PointNet as DD3D's released ``networks.py: PointNetSeg`` builds it.

A segmentation backbone maps clouds (B, N, 3) and their category ids (B,) to per-point part logits (B, N, P) and
the max-pooled global feature (B, C) (herding and k-center select shapes by it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ddbench.backbones.base import Backbone
from ddbench.backbones.utils import PointwiseConv1d
from ddbench.config import ComponentConfig
from ddbench.errors import DataError, IncompatibleError
from ddbench.references import Reference

#: the commit of github.com/bdy9527/DD3D that was read
DD3D_REVISION = "a500ab4bf84dbbb49b73093d5137b7217caca3e5"


@dataclass
class SegmentationOutput:
    point_logits: torch.Tensor  # (B, N, P)
    global_feature: torch.Tensor  # (B, C): the max-pooled feature, before the category one-hot is appended


class SegmentationBackbone(Backbone):
    """Base class of part-segmentation backbones. Subclasses implement :meth:`forward_features`."""

    tasks: ClassVar[tuple[str, ...]] = ("segmentation",)
    provides: ClassVar[frozenset[str]] = frozenset({"point_logits", "global_feature"})

    def __init__(self, config: ComponentConfig | None, num_parts: int, num_categories: int):
        super().__init__(config, num_parts)  # num_classes: the width of the logits, here the number of parts
        self.num_parts = int(num_parts)
        self.num_categories = int(num_categories)

    def forward(self, points: torch.Tensor, categories: torch.Tensor) -> SegmentationOutput:  # type: ignore[override]
        if points.dim() != 3 or points.shape[-1] != 3:
            raise DataError(f"{self.name} expects clouds of shape (B, N, 3), got {tuple(points.shape)}")
        if points.shape[1] < self.min_points:
            raise IncompatibleError(
                f"{self.name} needs at least {self.min_points} points per cloud, got {points.shape[1]}"
            )
        self._check_categories(points, categories)
        return self.forward_features(points, categories)

    def _check_categories(self, points: torch.Tensor, categories: torch.Tensor) -> None:
        """One integer category id in [0, num_categories) per cloud."""
        if categories.shape != (points.shape[0],) or categories.dtype.is_floating_point or categories.is_complex():
            raise DataError(f"{self.name} expects one integer category id per cloud, shape ({points.shape[0]},), "
                            f"got {categories.dtype} of shape {tuple(categories.shape)}")
        if categories.numel() and (categories.min() < 0 or categories.max() >= self.num_categories):
            raise DataError(f"{self.name}: category ids must lie in [0, {self.num_categories}), got "
                            f"{int(categories.min())}..{int(categories.max())}; check the category labels")

    def forward_features(  # type: ignore[override]
        self, points: torch.Tensor, categories: torch.Tensor
    ) -> SegmentationOutput:
        raise NotImplementedError


class PointNetSegConfig(ComponentConfig):
    """No options: the architecture is fixed by the reference."""


class PointNetSeg(SegmentationBackbone):
    """PointNet part segmentation of DD3D: conv 3-64-128-1024 (BN), max-pool + category one-hot + x1, x2, Linear."""

    name = "pointnet_seg"
    version = "1"
    display_name = "PointNet (part segmentation)"
    Config = PointNetSegConfig
    reference = Reference(
        paper="Bo and Wang, Point Cloud Dataset Distillation, ICML 2025 (PMLR 267:4588-4601)",
        repository="github.com/bdy9527/DD3D", revision=DD3D_REVISION,
        notes="part segmentation: networks.py PointNetSeg, used by seg_inr.py (one-hot width and part count "
              "there are the constants 16 and 50; here they come from the dataset)")

    def __init__(self, config: PointNetSegConfig | None = None, num_parts: int = 50, num_categories: int = 16):
        super().__init__(config, num_parts, num_categories)
        self.conv1 = nn.Sequential(PointwiseConv1d(3, 64, 1), nn.BatchNorm1d(64), nn.ReLU())
        self.conv2 = nn.Sequential(PointwiseConv1d(64, 128, 1), nn.BatchNorm1d(128), nn.ReLU())
        self.conv3 = nn.Sequential(PointwiseConv1d(128, 1024, 1), nn.BatchNorm1d(1024))  # no ReLU
        self.classifier = nn.Linear(1024 + self.num_categories + 64 + 128, self.num_parts)

    def forward_features(  # type: ignore[override]
        self, points: torch.Tensor, categories: torch.Tensor
    ) -> SegmentationOutput:
        n = points.shape[1]
        x1 = self.conv1(points.transpose(1, 2))  # (B, 64, N)
        x2 = self.conv2(x1)  # (B, 128, N)
        global_feature = self.conv3(x2).amax(dim=2)  # (B, 1024)
        ids = torch.arange(self.num_categories, device=categories.device)
        one_hot = (categories[:, None] == ids).to(global_feature.dtype)  # (B, C); no second device sync
        shape_feature = torch.cat([global_feature, one_hot], dim=1).unsqueeze(2).expand(-1, -1, n)
        per_point = torch.cat([shape_feature, x1, x2], dim=1).transpose(1, 2)  # (B, N, 1024 + C + 64 + 128)
        return SegmentationOutput(self.classifier(per_point), global_feature)
