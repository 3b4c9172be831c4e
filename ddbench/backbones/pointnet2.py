"""PointNet++ (Qi et al., 2017): single-scale (``pointnet2_ssg``) and multi-scale (``pointnet2_msg``) grouping.

Set abstraction: farthest point sampling of centroids, ball query of neighbours, coordinates relative to the
centroid concatenated with the neighbours' features, a shared MLP (1x1 convolutions with BatchNorm and ReLU),
max over the neighbours. The last level groups all points. Classifier: FC 512-256-K with BatchNorm, ReLU, dropout.

Clouds with fewer points than a level's centroid count use every point as a centroid, so 252- and 256-point
inputs (3DDP's anchors, DD3D's training resolution) run unchanged; the levels after that keep their own counts.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from ddbench.backbones.base import Backbone, BackboneOutput
from ddbench.config import ComponentConfig
from ddbench.ops.backends import farthest_point_sample
from ddbench.ops.neighbors import ball_query, group
from ddbench.ops.sampling import gather_points

GLOBAL_ONLY = frozenset({"logits", "global_feature"})


def channels_first(grouped: torch.Tensor) -> torch.Tensor:
    """(B, M, k, C) grouped features -> (B, C, k, M), contiguous: 1x1 convolutions on a permuted view take a slow
    path (tens of times slower on CPU)."""
    return grouped.permute(0, 3, 2, 1).contiguous()


def shared_mlp(channels: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for cin, cout in zip(channels[:-1], channels[1:]):
        layers += [nn.Conv2d(cin, cout, 1), nn.BatchNorm2d(cout), nn.ReLU()]
    return nn.Sequential(*layers)


def classifier_head(widths: list[int], num_classes: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for cin, cout in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(cin, cout), nn.BatchNorm1d(cout), nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers, nn.Linear(widths[-1], num_classes))


def sample_centroids(xyz: torch.Tensor, npoint: int) -> torch.Tensor:
    """FPS centroids (B, min(npoint, N), 3), differentiable w.r.t. the coordinates through the gather."""
    m = min(npoint, xyz.shape[1])
    return gather_points(xyz, farthest_point_sample(xyz, m))


class SetAbstraction(nn.Module):
    """One set-abstraction level; several (radius, nsample, mlp) scales make it multi-scale (MSG)."""

    def __init__(self, npoint: int | None, scales: list[tuple[float, int, list[int]]], in_channels: int):
        super().__init__()
        self.npoint = npoint  # None: group all points
        self.scales = [(r, k) for r, k, _ in scales]
        self.mlps = nn.ModuleList(shared_mlp([in_channels + 3, *mlp]) for _, _, mlp in scales)
        self.out_channels = sum(mlp[-1] for _, _, mlp in scales)

    def forward(self, xyz: torch.Tensor, feats: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.npoint is None:
            grouped = xyz.unsqueeze(1)  # (B, 1, N, 3): all points around the origin
            if feats is not None:
                grouped = torch.cat([grouped, feats.unsqueeze(1)], dim=-1)
            out = self.mlps[0](channels_first(grouped)).amax(dim=2)  # (B, C, 1)
            return xyz.new_zeros(xyz.shape[0], 1, 3), out.transpose(1, 2)
        centres = sample_centroids(xyz, self.npoint)
        outs = []
        for (radius, nsample), mlp in zip(self.scales, self.mlps):
            idx = ball_query(centres, xyz, radius, nsample)
            grouped = group(xyz, idx) - centres.unsqueeze(2)  # (B, M, k, 3)
            if feats is not None:
                grouped = torch.cat([grouped, group(feats, idx)], dim=-1)
            outs.append(mlp(channels_first(grouped)).amax(dim=2))  # (B, C, M)
        return centres, torch.cat(outs, dim=1).transpose(1, 2)


class PointNet2SSGConfig(ComponentConfig):
    dropout: float = Field(0.4, ge=0, lt=1)


class PointNet2SSG(Backbone):
    """PointNet++ single-scale: SA(512, r0.2, 32, [64,64,128]), SA(128, r0.4, 64, [128,128,256]), SA(all, [256,512,1024])."""

    name = "pointnet2_ssg"
    version = "1"
    display_name = "PointNet++ (SSG)"
    Config = PointNet2SSGConfig
    provides = GLOBAL_ONLY

    def __init__(self, config: PointNet2SSGConfig | None = None, num_classes: int = 40):
        super().__init__(config, num_classes)
        self.sa1 = SetAbstraction(512, [(0.2, 32, [64, 64, 128])], 0)
        self.sa2 = SetAbstraction(128, [(0.4, 64, [128, 128, 256])], self.sa1.out_channels)
        self.sa3 = SetAbstraction(None, [(0.0, 0, [256, 512, 1024])], self.sa2.out_channels)
        self.head = classifier_head([1024, 512, 256], num_classes, self.config.dropout)

    def forward_features(self, points: torch.Tensor) -> BackboneOutput:
        xyz, feats = self.sa1(points, None)
        xyz, feats = self.sa2(xyz, feats)
        _, feats = self.sa3(xyz, feats)
        g = feats.squeeze(1)
        return BackboneOutput(self.head(g), g)


MSG_VARIANTS = {
    # Qi et al.'s classification network
    "standard": {
        "sa1": (512, [(0.1, 16, [32, 32, 64]), (0.2, 32, [64, 64, 128]), (0.4, 128, [64, 96, 128])]),
        "sa2": (128, [(0.2, 32, [64, 64, 128]), (0.4, 64, [128, 128, 256]), (0.8, 128, [128, 128, 256])]),
        "sa3": [256, 512, 1024],
        "head": [1024, 512, 256],
    },
    # the cross-architecture pool of SADM/3DDP (docs/specification.md#cross-architecture-pool): 256 centroids, radii .1/.2/.4,
    # 8/16/32 neighbours, halved widths; then 64 centroids; then group-all. The second level's radii keep the
    # standard values and its neighbour counts are halved like the first level's (ddbench's reading).
    "slim": {
        "sa1": (256, [(0.1, 8, [16, 16, 32]), (0.2, 16, [32, 32, 64]), (0.4, 32, [32, 48, 64])]),
        "sa2": (64, [(0.2, 16, [32, 32, 64]), (0.4, 32, [64, 64, 128]), (0.8, 64, [64, 64, 128])]),
        "sa3": [128, 256, 512],
        "head": [512, 256, 128],
    },
}


class PointNet2MSGConfig(ComponentConfig):
    variant: Literal["slim", "standard"] = Field(
        "slim", description="slim: the SADM/3DDP cross-architecture pool (reference); standard: Qi et al."
    )
    dropout: float = Field(0.4, ge=0, lt=1)


class PointNet2MSG(Backbone):
    """PointNet++ multi-scale grouping; `variant` slim (SADM/3DDP pool, default) or standard (Qi et al.)."""

    name = "pointnet2_msg"
    version = "1"
    display_name = "PointNet++ (MSG)"
    Config = PointNet2MSGConfig
    provides = GLOBAL_ONLY

    def __init__(self, config: PointNet2MSGConfig | None = None, num_classes: int = 40):
        super().__init__(config, num_classes)
        spec = MSG_VARIANTS[self.config.variant]
        self.sa1 = SetAbstraction(*spec["sa1"], 0)
        self.sa2 = SetAbstraction(*spec["sa2"], self.sa1.out_channels)
        self.sa3 = SetAbstraction(None, [(0.0, 0, spec["sa3"])], self.sa2.out_channels)
        self.head = classifier_head(spec["head"], num_classes, self.config.dropout)

    def forward_features(self, points: torch.Tensor) -> BackboneOutput:
        xyz, feats = self.sa1(points, None)
        xyz, feats = self.sa2(xyz, feats)
        _, feats = self.sa3(xyz, feats)
        g = feats.squeeze(1)
        return BackboneOutput(self.head(g), g)
