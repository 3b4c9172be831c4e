"""PointConv (Wu et al., 2019), density-weighted, single scale.

Each level samples centroids by FPS, groups the k nearest points, and computes a continuous convolution: a weight
net (MLP on relative coordinates, 3-8-8-16) gives 16 weights per neighbour, an inverse-density scale (kernel
density estimate with a per-level bandwidth, normalised within the group, through a 1-16-1 MLP) reweights the
neighbours, and the features (shared MLP of relative coordinates and input features) are contracted with the
weights and projected by a linear layer. Levels: 512 centroids / 32 neighbours / [64, 64, 128] / bandwidth 0.1,
128 / 64 / [128, 128, 256] / 0.2, all points / [256, 512, 1024] / 0.4; classifier 512-256-K with dropout 0.7.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from ddbench.backbones.base import Backbone, BackboneOutput
from ddbench.backbones.pointnet2 import GLOBAL_ONLY, channels_first, classifier_head, sample_centroids, shared_mlp
from ddbench.config import ComponentConfig
from ddbench.ops.neighbors import group, knn

WEIGHT_CHANNELS = 16


def inverse_density(xyz: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """(B, N, 3) -> (B, N, 1): 1 / Gaussian kernel density estimate at every point (over all points)."""
    d2 = torch.cdist(xyz, xyz).pow(2)
    density = torch.exp(-d2 / (2 * bandwidth**2)).mean(-1) / (2.5 * bandwidth)
    return (1.0 / density).unsqueeze(-1)


class PointConvLevel(nn.Module):
    def __init__(self, npoint: int | None, nsample: int, in_channels: int, mlp: list[int], bandwidth: float):
        super().__init__()
        self.npoint, self.nsample, self.bandwidth = npoint, nsample, bandwidth
        self.mlp = shared_mlp([in_channels + 3, *mlp])
        self.weightnet = shared_mlp([3, 8, 8, WEIGHT_CHANNELS])
        self.densitynet = nn.Sequential(nn.Conv2d(1, 16, 1), nn.BatchNorm2d(16), nn.ReLU(),
                                        nn.Conv2d(16, 1, 1), nn.BatchNorm2d(1), nn.Sigmoid())
        self.linear = nn.Linear(WEIGHT_CHANNELS * mlp[-1], mlp[-1])
        self.bn = nn.BatchNorm1d(mlp[-1])
        self.out_channels = mlp[-1]

    def forward(self, xyz: torch.Tensor, feats: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        inv_density = inverse_density(xyz, self.bandwidth)  # (B, N, 1)
        if self.npoint is None:
            centres = xyz.new_zeros(xyz.shape[0], 1, 3)
            idx = torch.arange(xyz.shape[1], device=xyz.device).expand(xyz.shape[0], 1, -1)
            rel = group(xyz, idx)  # all points, relative to the origin
        else:
            centres = sample_centroids(xyz, self.npoint)
            idx = knn(centres, xyz, min(self.nsample, xyz.shape[1]))
            rel = group(xyz, idx) - centres.unsqueeze(2)
        grouped = rel if feats is None else torch.cat([rel, group(feats, idx)], dim=-1)  # (B, M, k, C)
        density = group(inv_density, idx)  # (B, M, k, 1)
        density = density / density.amax(dim=2, keepdim=True)
        scale = self.densitynet(channels_first(density))  # (B, 1, k, M)
        new = self.mlp(channels_first(grouped)) * scale  # (B, C, k, M)
        weights = self.weightnet(channels_first(rel))  # (B, W, k, M)
        # contract over neighbours: (B, M, C, k) @ (B, M, k, W) -> (B, M, C*W)
        out = torch.matmul(new.permute(0, 3, 1, 2), weights.permute(0, 3, 2, 1)).flatten(2)
        out = self.linear(out)  # (B, M, C)
        out = torch.relu(self.bn(out.transpose(1, 2))).transpose(1, 2)
        return centres, out


class PointConvConfig(ComponentConfig):
    dropout: float = Field(0.7, ge=0, lt=1, description="classifier dropout (reference 0.7)")


class PointConv(Backbone):
    """PointConv with inverse-density weighting: 512/128/1 centroids, 32/64 neighbours, dropout 0.7."""

    name = "pointconv"
    version = "1"
    display_name = "PointConv"
    Config = PointConvConfig
    provides = GLOBAL_ONLY

    def __init__(self, config: PointConvConfig | None = None, num_classes: int = 40):
        super().__init__(config, num_classes)
        self.l1 = PointConvLevel(512, 32, 0, [64, 64, 128], 0.1)
        self.l2 = PointConvLevel(128, 64, self.l1.out_channels, [128, 128, 256], 0.2)
        self.l3 = PointConvLevel(None, 1, self.l2.out_channels, [256, 512, 1024], 0.4)
        self.head = classifier_head([1024, 512, 256], num_classes, self.config.dropout)

    def forward_features(self, points: torch.Tensor) -> BackboneOutput:
        xyz, feats = self.l1(points, None)
        xyz, feats = self.l2(xyz, feats)
        _, feats = self.l3(xyz, feats)
        g = feats.squeeze(1)
        return BackboneOutput(self.head(g), g)

